# The Debian package: after the build, `cpack -G DEB` in the build directory
# writes lethe_<version>_<arch>.deb: everything `cmake --install` installs (binary, units, man
# page, sysusers.d and tmpfiles.d files, docs) plus /etc/lethe/lethe.toml as a conffile and the
# maintainer scripts in packaging/deb/. Included from the top CMakeLists.txt.

# The configuration file goes to /etc only in the package: `cmake --install` never writes /etc,
# so reinstalling from a build cannot overwrite an operator's configuration. Mode 0640: postinst
# gives it to group lethe, which the units run as.
install(FILES ${CMAKE_SOURCE_DIR}/config/lethe.example.toml
        DESTINATION ${CMAKE_INSTALL_FULL_SYSCONFDIR}/lethe RENAME lethe.toml
        PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ
        COMPONENT deb-etc EXCLUDE_FROM_ALL)

set(LETHE_DEB_MAINTAINER "Lethe maintainers <root@localhost>"
    CACHE STRING "Maintainer field of the Debian package")

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME lethe)
set(CPACK_PACKAGE_CONTACT "${LETHE_DEB_MAINTAINER}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "keeps a seller order database inside Amazon's Data Protection Policy")
string(CONCAT CPACK_DEBIAN_PACKAGE_DESCRIPTION
       "Batch worker that purges buyer PII on its retention clock, archives what must be kept "
       "for tax encrypted and cold, runs Amazon's deletion requests, takes encrypted backups "
       "with restore drills, and leaves a tamper-evident audit trail. Its systemd timers are "
       "installed but not enabled.")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT) # lethe_0.1.0_amd64.deb
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# Shared libraries from dpkg-shlibdeps (needs dpkg-dev and file); systemd for systemd-sysusers
# and systemd-tmpfiles in postinst; pg_dump and pg_restore 15 for backups and drills (found on
# PATH by default: backup.pg_dump, backup.pg_restore).
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "systemd, postgresql-client-15")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CMAKE_SOURCE_DIR}/packaging/deb/conffiles ${CMAKE_SOURCE_DIR}/packaging/deb/postinst
    ${CMAKE_SOURCE_DIR}/packaging/deb/prerm ${CMAKE_SOURCE_DIR}/packaging/deb/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
# The binary without its debug information (80 MB of it in RelWithDebInfo).
set(CPACK_STRIP_FILES ON)

# Everything is installed under DESTDIR at its absolute path (the units' and /etc's destinations
# are absolute), with directories 0755 whatever the umask of whoever runs cpack.
set(CPACK_SET_DESTDIR ON)
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
set(CPACK_INSTALL_DEFAULT_DIRECTORY_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ
    GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
# Two passes over this build: every default component, then the package-only /etc one.
set(CPACK_INSTALL_CMAKE_PROJECTS
    "${CMAKE_BINARY_DIR};lethe;ALL;/" "${CMAKE_BINARY_DIR};lethe;deb-etc;/")
# The maintainer scripts name /usr/lib/sysusers.d and tmpfiles.d: no package for another prefix.
set(CPACK_PROJECT_CONFIG_FILE ${CMAKE_SOURCE_DIR}/cmake/package-check.cmake)
include(CPack)

