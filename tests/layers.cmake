# The layering check (ARCHITECTURE.md, "Folders"): no upward #include between base, storage,
# replication, rest and server, and third-party headers only in the folder that owns them.
# Include from tests/CMakeLists.txt:  include(${CMAKE_CURRENT_SOURCE_DIR}/layers.cmake)
add_test(NAME LayeringHasNoUpwardIncludes
         COMMAND ${CMAKE_SOURCE_DIR}/tests/check_layers.sh ${CMAKE_SOURCE_DIR})
set_tests_properties(LayeringHasNoUpwardIncludes PROPERTIES LABELS unit)
