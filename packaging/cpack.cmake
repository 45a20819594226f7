# SPDX-License-Identifier: Apache-2.0
# Deployment files and the Debian package: the systemd unit and its sysusers.d entry,
# the man pages, the example configuration, and CPack's DEB generator. Included last
# from the top-level CMakeLists.txt, after the agent's own install() rules (binary,
# plug-ins, public header).
#
# The package is meant for a /usr prefix (plug-ins in /usr/lib/<multiarch>/..., the
# example in /etc): configure with -DCMAKE_INSTALL_PREFIX=/usr before running
# `cpack -G DEB`. The DEB generator refuses another prefix (packaging/debian/cpack-project.cmake).

set(CA_PKG_SRC ${CMAKE_CURRENT_LIST_DIR})
set(CA_PKG_NAME connector-agent)
set(CA_SYSTEMD_UNITDIR "lib/systemd/system" CACHE STRING
    "Where the systemd unit is installed (relative to the prefix, or absolute)")
set(CA_SYSUSERSDIR "lib/sysusers.d" CACHE STRING
    "Where the sysusers.d entry is installed (relative to the prefix, or absolute)")
# /etc when the prefix is /usr (GNUInstallDirs' rule), <prefix>/etc otherwise.
set(CA_CONFDIR "${CMAKE_INSTALL_FULL_SYSCONFDIR}/connector-agent")
set(CA_DOCDIR "${CMAKE_INSTALL_DATAROOTDIR}/doc/${CA_PKG_NAME}")
if(IS_ABSOLUTE "${CA_SYSUSERSDIR}")
  set(CA_SYSUSERS_ABS "${CA_SYSUSERSDIR}")
else()
  set(CA_SYSUSERS_ABS "${CMAKE_INSTALL_PREFIX}/${CA_SYSUSERSDIR}")
endif()

install(FILES ${CMAKE_SOURCE_DIR}/systemd/connector-agent.service
  DESTINATION ${CA_SYSTEMD_UNITDIR})
# sysusers.d reads only *.conf.
install(FILES ${CMAKE_SOURCE_DIR}/systemd/connector-agent.sysusers
  DESTINATION ${CA_SYSUSERSDIR} RENAME connector-agent.conf)

# Man pages, compressed as Debian wants them (-n: no name or time stamp, reproducible).
find_program(CA_GZIP gzip REQUIRED)
set(CA_MAN_PAGES connector-agent.8 agent.conf.5)
set(CA_MAN_OUTPUTS "")
foreach(page ${CA_MAN_PAGES})
  string(REGEX REPLACE ".*\\.([0-9])$" "\\1" section ${page})
  set(out ${CMAKE_BINARY_DIR}/man/${page}.gz)
  add_custom_command(OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/man
    COMMAND ${CA_GZIP} -9nc ${CA_PKG_SRC}/man/${page} > ${out}
    DEPENDS ${CA_PKG_SRC}/man/${page} VERBATIM)
  list(APPEND CA_MAN_OUTPUTS ${out})
  install(FILES ${out} DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section})
endforeach()
add_custom_target(ca_man_pages ALL DEPENDS ${CA_MAN_OUTPUTS})

# connector-agent-admin: runs operator commands (doctor, journal, ...) as the unit runs
# the agent, with its user and credentials.
set(CA_AGENT_PATH "${CMAKE_INSTALL_FULL_SBINDIR}/connector-agent")
configure_file(${CA_PKG_SRC}/connector-agent-admin ${CMAKE_BINARY_DIR}/connector-agent-admin
  @ONLY FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE
  WORLD_READ WORLD_EXECUTE)
install(PROGRAMS ${CMAKE_BINARY_DIR}/connector-agent-admin DESTINATION ${CMAKE_INSTALL_SBINDIR})

# The state directory (state_dir's default, the unit's StateDirectory=) belongs to the
# package, so that it exists without systemd too; postinst gives it to the service user.
set(CA_STATEDIR "${CMAKE_INSTALL_FULL_LOCALSTATEDIR}/lib/connector-agent")
install(DIRECTORY DESTINATION ${CA_STATEDIR})

# The project's own guides: the server protocol, the back-ends' semantics, Active
# Directory, guardrails, several instances on one journal, and plug-ins.
set(CA_GUIDES protocol.md backends.md active-directory.md guardrails.md high-availability.md
  plugins.md)
list(TRANSFORM CA_GUIDES PREPEND ${CA_PKG_SRC}/doc/)
install(FILES ${CA_GUIDES} DESTINATION ${CA_DOCDIR})

# /etc/connector-agent belongs to the package even without the example: the operator
# puts agent.conf and the client secret there.
install(DIRECTORY DESTINATION ${CA_CONFDIR})

# The example configuration is written by another part of the project; it is packaged
# when it is there at configure time.
set(CA_EXAMPLE_CONF ${CA_PKG_SRC}/agent.conf.example)
set(CA_EXAMPLE_SHA256 "")
if(EXISTS ${CA_EXAMPLE_CONF})
  install(FILES ${CA_EXAMPLE_CONF} DESTINATION ${CA_DOCDIR}/examples RENAME agent.conf)
  install(FILES ${CA_EXAMPLE_CONF} DESTINATION ${CA_CONFDIR})
  file(SHA256 ${CA_EXAMPLE_CONF} CA_EXAMPLE_SHA256)
  set(CA_DEB_CONFFILES "${CA_CONFDIR}/agent.conf.example\n")
else()
  message(STATUS "packaging/agent.conf.example not found: not packaged")
  set(CA_DEB_CONFFILES "")
endif()

# ---- Debian package ----
set(CPACK_PACKAGE_NAME ${CA_PKG_NAME})
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
# A Debian revision: the package is not native to Debian (lintian names the changelog).
set(CPACK_DEBIAN_PACKAGE_RELEASE 1 CACHE STRING "Debian revision of the package")
set(CPACK_PACKAGE_CONTACT "connector-agent maintainers <maintainers@connector-agent.invalid>"
    CACHE STRING "Maintainer of the Debian package")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "on-premise provisioning agent for identity servers")
# CPack puts the summary first and indents every line of this body by one space.
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
  "connector-agent polls an identity-governance server (Netwrix Identity Manager
and its peers) for provisioning orders, applies them to LDAP directories, SQL
databases, external programs or files through back-end plug-ins, and reports
the results. Every order is journalled before it is applied, so that none is
applied twice or lost across crashes and outages.

The service is installed but neither enabled nor started: configure
/etc/connector-agent/agent.conf first (see agent.conf(5)).")
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# The maintainer scripts call systemd-sysusers (from systemd) or useradd (passwd); the
# unit's ExecReload runs /bin/kill (procps, missing from minimal and container systems).
# The maintainer scripts' snippets call deb-systemd-helper and deb-systemd-invoke
# (init-system-helpers), as debhelper's dh_installsystemd writes them.
set(CPACK_DEBIAN_PACKAGE_DEPENDS "systemd | passwd, procps, init-system-helpers (>= 1.54~)")
set(CPACK_STRIP_FILES ON)
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
set(CPACK_GENERATOR DEB)
# Two packages: connector-agent (every install() rule without a component, CMake's
# "Unspecified") and connector-agent-dev (the component "dev": the plug-in header and
# the pkg-config file, for plug-in authors).
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL Unspecified dev)
set(CPACK_DEBIAN_UNSPECIFIED_PACKAGE_NAME ${CA_PKG_NAME})
set(CPACK_DEBIAN_DEV_PACKAGE_NAME ${CA_PKG_NAME}-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS
  "${CA_PKG_NAME} (= ${PROJECT_VERSION}-${CPACK_DEBIAN_PACKAGE_RELEASE})")
set(CPACK_DEBIAN_DEV_DESCRIPTION "connector-agent back-end plug-in development files
The versioned C interface between connector-agent and its back-end plug-ins
(connector-agent/backend.h) and its pkg-config file: a plug-in builds with
`pkg-config --cflags connector-agent` and is loaded by the installed agent.")

configure_file(${CA_PKG_SRC}/debian/postinst.in ${CMAKE_BINARY_DIR}/debian/postinst @ONLY
  FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE
  WORLD_READ WORLD_EXECUTE)
configure_file(${CA_PKG_SRC}/debian/postrm.in ${CMAKE_BINARY_DIR}/debian/postrm @ONLY
  FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE
  WORLD_READ WORLD_EXECUTE)
configure_file(${CA_PKG_SRC}/debian/prerm.in ${CMAKE_BINARY_DIR}/debian/prerm @ONLY
  FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE
  WORLD_READ WORLD_EXECUTE)
set(CA_DEB_CONTROL_EXTRA ${CMAKE_BINARY_DIR}/debian/postinst ${CMAKE_BINARY_DIR}/debian/postrm
  ${CMAKE_BINARY_DIR}/debian/prerm)
if(CA_DEB_CONFFILES)
  file(WRITE ${CMAKE_BINARY_DIR}/debian/conffiles "${CA_DEB_CONFFILES}")
  list(APPEND CA_DEB_CONTROL_EXTRA ${CMAKE_BINARY_DIR}/debian/conffiles)
endif()
set(CPACK_DEBIAN_UNSPECIFIED_PACKAGE_CONTROL_EXTRA ${CA_DEB_CONTROL_EXTRA})
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

# Debian's changelog and copyright, which every package carries. The date honours
# SOURCE_DATE_EPOCH, for reproducible packages.
string(TIMESTAMP CA_BUILD_DATE "%a, %d %b %Y %H:%M:%S +0000" UTC)
configure_file(${CA_PKG_SRC}/debian/changelog.in ${CMAKE_BINARY_DIR}/debian/changelog @ONLY)
add_custom_command(OUTPUT ${CMAKE_BINARY_DIR}/debian/changelog.Debian.gz
  COMMAND ${CA_GZIP} -9nc ${CMAKE_BINARY_DIR}/debian/changelog
    > ${CMAKE_BINARY_DIR}/debian/changelog.Debian.gz
  DEPENDS ${CMAKE_BINARY_DIR}/debian/changelog VERBATIM)
add_custom_target(ca_deb_changelog ALL DEPENDS ${CMAKE_BINARY_DIR}/debian/changelog.Debian.gz)
install(FILES ${CMAKE_BINARY_DIR}/debian/changelog.Debian.gz ${CA_PKG_SRC}/debian/copyright
  DESTINATION ${CA_DOCDIR})
# Every Debian package carries both, the -dev package included.
install(FILES ${CMAKE_BINARY_DIR}/debian/changelog.Debian.gz ${CA_PKG_SRC}/debian/copyright
  ${CA_PKG_SRC}/doc/plugins.md
  DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/${CA_PKG_NAME}-dev COMPONENT dev)
install(FILES ${CA_PKG_SRC}/debian/lintian-overrides
  DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/lintian/overrides RENAME ${CA_PKG_NAME})

set(CPACK_PROJECT_CONFIG_FILE ${CA_PKG_SRC}/debian/cpack-project.cmake)
include(CPack)
