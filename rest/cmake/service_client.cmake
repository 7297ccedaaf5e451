# The C++ service SDK: library hubcast_service_client (rest/service_client.h) and what
# `cmake --install <build> [--component sdk]` puts under the prefix:
#   include/hubcast/service_client.h            the only public header (standard library only)
#   lib/libhubcast_service_client.a             with its two private archives below
#   lib/libhubcast_jwt.a, lib/libhubcast_base.a
#   lib/cmake/Hubcast/HubcastConfig.cmake (+ ConfigVersion, Targets): find_package(Hubcast)
#                                               gives the target Hubcast::service_client
#   lib/pkgconfig/hubcast.pc                    pkg-config --cflags --libs hubcast
# (lib is CMAKE_INSTALL_LIBDIR, lib/<multiarch> under /usr on Debian.)

add_library(hubcast_service_client ${CMAKE_CURRENT_LIST_DIR}/../service_client.cc)
target_link_libraries(hubcast_service_client
  PRIVATE hubcast_jwt hubcast_base cpprestsdk::cpprest OpenSSL::Crypto)
target_compile_definitions(hubcast_service_client PRIVATE HUBCAST_VERSION="${PROJECT_VERSION}")

include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

# Users may link the archives into shared objects of their own.
set_target_properties(hubcast_service_client hubcast_jwt hubcast_base
  PROPERTIES POSITION_INDEPENDENT_CODE ON)
set_target_properties(hubcast_service_client PROPERTIES EXPORT_NAME service_client)
set_target_properties(hubcast_jwt PROPERTIES EXPORT_NAME jwt)
set_target_properties(hubcast_base PROPERTIES EXPORT_NAME base)
target_include_directories(hubcast_service_client
  INTERFACE $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)

install(TARGETS hubcast_service_client hubcast_jwt hubcast_base
  EXPORT HubcastTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT sdk
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT sdk)
install(FILES ${CMAKE_CURRENT_LIST_DIR}/../service_client.h
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/hubcast COMPONENT sdk)

set(HUBCAST_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/Hubcast)
install(EXPORT HubcastTargets NAMESPACE Hubcast:: DESTINATION ${HUBCAST_CMAKE_DIR}
  COMPONENT sdk)
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/HubcastConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/HubcastConfig.cmake
  INSTALL_DESTINATION ${HUBCAST_CMAKE_DIR})
# 0.x: a minor version may break the API.
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/HubcastConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/HubcastConfig.cmake
  ${CMAKE_CURRENT_BINARY_DIR}/HubcastConfigVersion.cmake
  DESTINATION ${HUBCAST_CMAKE_DIR} COMPONENT sdk)

# hubcast.pc finds its prefix from its own place (${pcfiledir}), so an install with
# `cmake --install --prefix P` works wherever P is.
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(HUBCAST_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
else()
  file(RELATIVE_PATH HUBCAST_PC_UP "/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/")
  string(REGEX REPLACE "/$" "" HUBCAST_PC_UP "${HUBCAST_PC_UP}")
  set(HUBCAST_PC_PREFIX "\${pcfiledir}/${HUBCAST_PC_UP}")
endif()
configure_file(${CMAKE_CURRENT_LIST_DIR}/hubcast.pc.in ${CMAKE_CURRENT_BINARY_DIR}/hubcast.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/hubcast.pc
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT sdk)
