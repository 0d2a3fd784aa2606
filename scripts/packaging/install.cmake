# scripts/packaging/install.cmake -- run by `cmake --install` (install(SCRIPT) in
# CMakeLists.txt): the systemd unit and the default configuration, made for
# the prefix of THIS install (`make install PREFIX=/usr`, `cmake --install
# build --prefix P`), which is known only now; DESTDIR is honoured by
# file(INSTALL). SR_SOURCE_DIR and SR_BINARY_DIR are set before it runs.
#   prefix /usr: the binary /usr/bin/suiro, the configuration /etc/suiro;
#   another prefix P: P/bin/suiro, P/etc/suiro (as GNUInstallDirs does).
# The data directory is /var/lib/suiro whatever the prefix (the unit's
# StateDirectory=). An existing configuration file is never overwritten: the
# new default goes beside it as suiro.ini.dist.
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(SR_SYSCONFDIR "/etc")
else()
  set(SR_SYSCONFDIR "${CMAKE_INSTALL_PREFIX}/etc")
endif()
set(SR_BINDIR "${CMAKE_INSTALL_PREFIX}/bin")
set(SR_DOCDIR "${CMAKE_INSTALL_PREFIX}/share/doc/suiro")
# (one directory per prefix and DESTDIR: installs side by side never share a file)
string(MD5 _key "${CMAKE_INSTALL_PREFIX}|$ENV{DESTDIR}")
set(_gen "${SR_BINARY_DIR}/packaging/${_key}")
configure_file("${SR_SOURCE_DIR}/scripts/packaging/suiro.service.in" "${_gen}/suiro.service" @ONLY)
configure_file("${SR_SOURCE_DIR}/scripts/packaging/suiro.ini.in" "${_gen}/suiro.ini" @ONLY)
file(INSTALL "${_gen}/suiro.service" DESTINATION "${CMAKE_INSTALL_PREFIX}/lib/systemd/system"
     PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
set(_ini "$ENV{DESTDIR}${SR_SYSCONFDIR}/suiro/suiro.ini")
if(EXISTS "${_ini}")
  file(READ "${_ini}" _old)
  file(READ "${_gen}/suiro.ini" _new)
  if(NOT _old STREQUAL _new)
    configure_file("${_gen}/suiro.ini" "${_gen}/dist/suiro.ini.dist" COPYONLY)
    file(INSTALL "${_gen}/dist/suiro.ini.dist" DESTINATION "${SR_SYSCONFDIR}/suiro"
         PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
    message(STATUS "Kept: ${_ini} (the new default is suiro.ini.dist beside it)")
  endif()
else()
  file(INSTALL "${_gen}/suiro.ini" DESTINATION "${SR_SYSCONFDIR}/suiro"
       PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
endif()
