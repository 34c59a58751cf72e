# The Debian package (cpack -G DEB in a build tree): daemon, CLI, plugins, systemd unit,
# sysusers/tmpfiles, an example configuration as a conffile, man pages, and the dependencies
# dpkg-shlibdeps finds in the binaries.
find_program(GO_MD2MAN go-md2man)
if(GO_MD2MAN)
  # Man pages from the Markdown manuals (their first line becomes the title block).
  set(FL_MAN_DIR ${CMAKE_BINARY_DIR}/man)
  foreach(page fieldlinkd:8 fieldlink:1)
    string(REPLACE ":" ";" parts ${page})
    list(GET parts 0 name)
    list(GET parts 1 section)
    add_custom_command(
      OUTPUT ${FL_MAN_DIR}/${name}.${section}.gz
      COMMAND ${CMAKE_COMMAND} -E make_directory ${FL_MAN_DIR}
      COMMAND sh -c "{ echo '% ${name} ${section}'; tail -n +2 '${PROJECT_SOURCE_DIR}/docs/${name}.md'; } | ${GO_MD2MAN} | gzip -9n > '${FL_MAN_DIR}/${name}.${section}.gz'"
      DEPENDS ${PROJECT_SOURCE_DIR}/docs/${name}.md
      VERBATIM)
    list(APPEND FL_MAN_PAGES ${FL_MAN_DIR}/${name}.${section}.gz)
    install(FILES ${FL_MAN_DIR}/${name}.${section}.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section})
  endforeach()
  add_custom_target(man ALL DEPENDS ${FL_MAN_PAGES})
else()
  message(STATUS "go-md2man not found: no man pages (install go-md2man to package them)")
endif()

install(FILES config/fieldlink.yaml DESTINATION /etc/fieldlink)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME fieldlink)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "fieldlink maintainers <fieldlink@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "edge gateway: Modbus RTU/TCP and serial sensors to cloud IoT over MQTT")
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
    "fieldlinkd polls Modbus RTU/TCP devices and ASCII serial sensors and publishes their\ndata to OneNET, DaShi AIoT, ThingsBoard or any MQTT broker, with a durable outbox that\nloses nothing across outages, and takes writes from the cloud.")
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# systemd-sysusers and systemd-tmpfiles run in postinst
set(CPACK_DEBIAN_PACKAGE_DEPENDS "systemd")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${PROJECT_SOURCE_DIR}/deploy/debian/conffiles ${PROJECT_SOURCE_DIR}/deploy/debian/postinst
    ${PROJECT_SOURCE_DIR}/deploy/debian/prerm ${PROJECT_SOURCE_DIR}/deploy/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
