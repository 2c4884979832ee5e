# Dependency lookup that fails with the Debian package to install.
#
#   streamtally_require_pkg(<prefix> <pkg-config module> <debian package>)
#     -> imported target PkgConfig::<prefix>
#   streamtally_require_package(<find_package name> <debian package> [find_package args...])
find_package(PkgConfig REQUIRED)

function(streamtally_require_pkg prefix module debian_package)
  if(NOT TARGET PkgConfig::${prefix})
    pkg_check_modules(${prefix} QUIET IMPORTED_TARGET GLOBAL ${module})
    if(NOT ${prefix}_FOUND)
      message(FATAL_ERROR "StreamTally needs ${module}: install the Debian package '${debian_package}' "
                          "(or run scripts/setup-deps.sh)")
    endif()
  endif()
endfunction()

macro(streamtally_require_package name debian_package)
  find_package(${name} ${ARGN} QUIET)
  if(NOT ${name}_FOUND)
    message(FATAL_ERROR "StreamTally needs ${name}: install the Debian package '${debian_package}' "
                        "(or run scripts/setup-deps.sh)")
  endif()
endmacro()
