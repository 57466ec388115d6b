# srv_validate: the challenge validators (http-01, dns-01, tls-alpn-01) behind
# srv_validator_new()/submit()/free() in srv_int.h. include()d from
# server/CMakeLists.txt; paths are relative to this file so that works anywhere.
add_library(srv_validate STATIC
  ${CMAKE_CURRENT_LIST_DIR}/srv_validate.c
  ${CMAKE_CURRENT_LIST_DIR}/srv_validate_dns.c
  ${CMAKE_CURRENT_LIST_DIR}/srv_validate_dnstcp.c
  ${CMAKE_CURRENT_LIST_DIR}/srv_validate_http.c
  ${CMAKE_CURRENT_LIST_DIR}/srv_validate_tls.c)
attesta_module(srv_validate)
target_link_libraries(srv_validate PUBLIC pki common PkgConfig::LIBEVENT OpenSSL::SSL
  OpenSSL::Crypto Threads::Threads)
