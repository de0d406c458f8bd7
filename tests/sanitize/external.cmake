# external.cmake -- builds tests/sanitize (foldline's fuzz targets and the
# ASan+UBSan builds, see its CMakeLists.txt) with clang as an ExternalProject
# of the main build, in build/sanitize/, and adds its tests to this build's
# ctest. Included by the main CMakeLists.txt when FOLDLINE_SANITIZE is ON
# (tools/test.sh turns it on).
include(ExternalProject)
find_program(FOLDLINE_CLANG NAMES clang clang-14 REQUIRED)
find_program(FOLDLINE_CLANGXX NAMES clang++ clang++-14 REQUIRED)
set(FOLDLINE_FUZZ_SECONDS 30 CACHE STRING "seconds each fuzz_* test fuzzes")
set(_san_dir ${CMAKE_CURRENT_BINARY_DIR}/sanitize)
set(_san_args
  -DCMAKE_C_COMPILER=${FOLDLINE_CLANG}
  -DCMAKE_CXX_COMPILER=${FOLDLINE_CLANGXX}
  -DCMAKE_BUILD_TYPE=RelWithDebInfo
  -DFOLDLINE_ROOT=${CMAKE_CURRENT_SOURCE_DIR}
  -DFOLDLINE_FUZZ_SECONDS=${FOLDLINE_FUZZ_SECONDS}
  -DFOLDLINE_TEST_PYTHON=${FOLDLINE_TEST_PYTHON}
  -DFOLDLINE_TORCH_LIB=$<TARGET_FILE:foldline_torch>)
foreach(v CMAKE_PREFIX_PATH CMAKE_C_COMPILER_LAUNCHER CMAKE_CXX_COMPILER_LAUNCHER)
  if(${v})
    string(REPLACE ";" "|" _v "${${v}}")
    list(APPEND _san_args -D${v}=${_v})
  endif()
endforeach()
ExternalProject_Add(foldline_sanitize
  SOURCE_DIR ${CMAKE_CURRENT_SOURCE_DIR}/tests/sanitize
  BINARY_DIR ${_san_dir}
  LIST_SEPARATOR |
  CMAKE_ARGS ${_san_args}
  DEPENDS foldline_torch # linked into its ASan foldline as is
  BUILD_ALWAYS ON        # its sources live in this tree: let its own build decide what changed
  INSTALL_COMMAND "")
# ctest reads the sub-build's tests once it exists (after the first build).
file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/sanitize_tests.cmake
     "if(EXISTS \"${_san_dir}/CTestTestfile.cmake\")\n  include(\"${_san_dir}/CTestTestfile.cmake\")\nendif()\n")
set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES ${CMAKE_CURRENT_BINARY_DIR}/sanitize_tests.cmake)
