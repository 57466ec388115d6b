# ATTESTA_SANITIZE=ON builds everything with AddressSanitizer and UndefinedBehaviorSanitizer.
if(ATTESTA_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
endif()

# ATTESTA_FUZZ=ON (clang only) instruments every library for libFuzzer coverage as well as
# ASan+UBSan, because the drivers in tests/fuzz can only find what the libraries under them
# report. Configure it as: CC=clang cmake -S . -B build-fuzz -DATTESTA_FUZZ=ON
# (scripts/fuzz.sh does this). Only the drivers link -fsanitize=fuzzer, which brings main().
if(ATTESTA_FUZZ)
  if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "ATTESTA_FUZZ needs clang (CC=clang), not ${CMAKE_C_COMPILER_ID}")
  endif()
  if(ATTESTA_SANITIZE)
    message(FATAL_ERROR "ATTESTA_FUZZ already enables ASan+UBSan; leave ATTESTA_SANITIZE off")
  endif()
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer
    -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
endif()
