# Warning set from the style guide (section 8.8); -Werror is on unless ATTESTA_WERROR=OFF.
set(ATTESTA_WARNINGS -Wall -Wextra -Wstrict-prototypes -Wmissing-prototypes -Wshadow
    -Wpointer-arith -Wsign-compare -Wformat=2 -Wno-unused-parameter)
if(ATTESTA_WERROR)
  list(APPEND ATTESTA_WARNINGS -Werror)
endif()
function(attesta_module name)
  target_compile_options(${name} PRIVATE ${ATTESTA_WARNINGS})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR})
endfunction()
