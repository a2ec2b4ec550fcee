# Finds stint's libraries through pkg-config. A missing one stops the configure step with the name of
# the Debian package that provides it (deploy/local/bootstrap installs them all).
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)

function(stint_require_pkg target pcname debpkg)
  pkg_check_modules(${target} QUIET IMPORTED_TARGET ${pcname})
  if(NOT ${target}_FOUND)
    message(FATAL_ERROR "stint needs ${pcname} (pkg-config). Install the Debian package '${debpkg}': "
                        "sudo apt-get install ${debpkg}   (or run deploy/local/bootstrap)")
  endif()
  message(STATUS "Found ${pcname} ${${target}_VERSION}")
endfunction()

stint_require_pkg(RDKAFKA rdkafka librdkafka-dev)
stint_require_pkg(AVRO avro-c libavro-dev)
stint_require_pkg(JANSSON jansson libjansson-dev)
stint_require_pkg(OPENBLAS openblas libopenblas-dev)
stint_require_pkg(LAPACKE lapacke liblapacke-dev)
stint_require_pkg(XGBOOST xgboost libxgboost-dev)
stint_require_pkg(HIREDIS hiredis libhiredis-dev)
stint_require_pkg(CURL libcurl libcurl4-openssl-dev)
stint_require_pkg(MHD libmicrohttpd libmicrohttpd-dev)
