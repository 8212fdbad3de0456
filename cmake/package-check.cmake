# Read by cpack (CPACK_PROJECT_CONFIG_FILE, see package.cmake). The Debian package's maintainer
# scripts name /usr/lib/sysusers.d and /usr/lib/tmpfiles.d, so a package is made only from a
# build configured for the prefix /usr (the default).
if(CPACK_GENERATOR STREQUAL "DEB" AND NOT CPACK_PACKAGING_INSTALL_PREFIX STREQUAL "/usr")
  message(FATAL_ERROR "the Debian package needs CMAKE_INSTALL_PREFIX=/usr, this build has "
                      "${CPACK_PACKAGING_INSTALL_PREFIX}; configure another build directory "
                      "without -DCMAKE_INSTALL_PREFIX for the package")
endif()
