# Debian package (CPack DEB): `cpack -G DEB` in a build directory after building pacs-agent.
# Included OPTIONALly from the top-level CMakeLists.txt. Layout:
#   /usr/bin/pacs-agent                       (install(TARGETS ... DESTINATION bin) in agent/)
#   /usr/bin/pacs-capacity-report             (report/: HTML capacity report from Prometheus)
#   /lib/systemd/system/pacs-agent.service    /usr/lib/sysusers.d/pacs-agent.conf
#   /etc/pacs-agent/pacs-agent.toml           /etc/default/pacs-agent        (conffiles)
#   /usr/share/pacs-agent/alerts/*.yml, runbook.md
#   /usr/share/pacs-agent/dashboards/*.json
#   /usr/share/pacs-agent/examples/{prometheus,alertmanager,grafana,fleet}/...
#   /usr/share/doc/pacs-agent/{README.md,metrics.md,scaling.md,runbook.md,capacity.md,capacity-report.md}
set(_pacs_src ${PROJECT_SOURCE_DIR})

install(FILES ${_pacs_src}/deploy/pacs-agent.service DESTINATION /lib/systemd/system COMPONENT agent)
install(FILES ${_pacs_src}/deploy/pacs-agent.sysusers DESTINATION lib/sysusers.d RENAME pacs-agent.conf COMPONENT agent)
install(FILES ${_pacs_src}/deploy/pacs-agent.toml DESTINATION /etc/pacs-agent
        PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ COMPONENT agent)
# 0600: admins put secrets there (password_env values); systemd reads it as root.
install(FILES ${_pacs_src}/deploy/pacs-agent.default DESTINATION /etc/default RENAME pacs-agent
        PERMISSIONS OWNER_READ OWNER_WRITE COMPONENT agent)

file(GLOB _pacs_rules ${_pacs_src}/alerts/*.rules.yml)
install(FILES ${_pacs_rules} ${_pacs_src}/alerts/runbook.md DESTINATION share/pacs-agent/alerts COMPONENT agent)
file(GLOB _pacs_dashboards ${_pacs_src}/dashboards/*.json)
install(FILES ${_pacs_dashboards} DESTINATION share/pacs-agent/dashboards COMPONENT agent)
install(DIRECTORY ${_pacs_src}/deploy/prometheus ${_pacs_src}/deploy/alertmanager ${_pacs_src}/deploy/grafana
                  ${_pacs_src}/deploy/fleet
        DESTINATION share/pacs-agent/examples COMPONENT agent)
install(FILES ${_pacs_src}/deploy/README.md DESTINATION share/doc/pacs-agent COMPONENT agent)
install(PROGRAMS ${_pacs_src}/report/pacs-capacity-report DESTINATION bin COMPONENT agent)
install(FILES ${_pacs_src}/report/README.md DESTINATION share/doc/pacs-agent RENAME capacity-report.md COMPONENT agent)
foreach(_doc docs/metrics.md docs/scaling.md docs/configuration.md docs/capacity.md alerts/runbook.md)
  if(EXISTS ${_pacs_src}/${_doc})
    install(FILES ${_pacs_src}/${_doc} DESTINATION share/doc/pacs-agent COMPONENT agent)
  endif()
endforeach()

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME pacs-agent)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "pacs-agent")
set(CPACK_PACKAGE_CONTACT "PACS monitoring <pacs-agent@hospital.example>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Prometheus exporter for PACS: DICOM echo/find/worklist, storage and queues")
set(CPACK_PACKAGE_DESCRIPTION "pacs-agent probes DICOM application entities (C-ECHO, C-FIND, worklist),
 PACS volumes (space, inodes, read-only, stuck mounts) and queues (spool folders, Orthanc and
 dcm4chee jobs) and exports the results on /metrics. Ships alert rules with a runbook,
 Grafana dashboards and Prometheus/Alertmanager examples under /usr/share/pacs-agent,
 and pacs-capacity-report, which writes a self-contained HTML capacity report (volume
 fill dates, growth, studies per modality, availability, alerts) from Prometheus.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://pacs-agent.example.org")
# Library dependencies (libdcmtk17, libprometheus-cpp-core1.0, libcurl4, libssl3, ...) come
# from dpkg-shlibdeps on the built binary; the fallback list is used where it is missing.
# python3: /usr/bin/pacs-capacity-report is a Python script (small, and on every Debian
# system that has apt's Python tooling anyway), so it is a Depends.
# python3-matplotlib only Recommends: only the report draws charts, and it pulls in numpy,
# Pillow and fonts (~100 MB) that a PACS node running only the agent does not need; apt
# installs Recommends by default, `--no-install-recommends` keeps nodes small, and the
# report names the missing package when run without it.
find_program(_pacs_dpkg_shlibdeps dpkg-shlibdeps)
if(_pacs_dpkg_shlibdeps)
  set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
  set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser, python3")
else()
  set(CPACK_DEBIAN_PACKAGE_DEPENDS
      "adduser, python3, libdcmtk17, libprometheus-cpp-core1.0, libcurl4, libssl3, zlib1g, libstdc++6")
endif()
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "python3-matplotlib")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "prometheus, prometheus-alertmanager, orthanc")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${_pacs_src}/deploy/debian/conffiles
    ${_pacs_src}/deploy/debian/postinst
    ${_pacs_src}/deploy/debian/prerm
    ${_pacs_src}/deploy/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)
include(CPack)
