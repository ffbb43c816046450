# Finds ONNX Runtime's C/C++ API. Honours ONNXRUNTIME_ROOT (a prefix with
# include/ and lib/, such as an official release tarball); otherwise looks in
# the prefix that scripts/install-onnxruntime.sh assembles under .deps/.
# Defines the imported target OnnxRuntime::OnnxRuntime.
set(ONNXRUNTIME_ROOT "${ONNXRUNTIME_ROOT}" CACHE PATH "ONNX Runtime prefix (include/ and lib/)")
set(_ort_hints "${ONNXRUNTIME_ROOT}" "$ENV{ONNXRUNTIME_ROOT}" "${CMAKE_SOURCE_DIR}/.deps/onnxruntime")

find_path(OnnxRuntime_INCLUDE_DIR onnxruntime_cxx_api.h
  HINTS ${_ort_hints} PATH_SUFFIXES include include/onnxruntime include/onnxruntime/core/session
  NO_DEFAULT_PATH)
find_library(OnnxRuntime_LIBRARY onnxruntime HINTS ${_ort_hints} PATH_SUFFIXES lib lib64 NO_DEFAULT_PATH)

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(OnnxRuntime REQUIRED_VARS OnnxRuntime_LIBRARY OnnxRuntime_INCLUDE_DIR)

if(OnnxRuntime_FOUND AND NOT TARGET OnnxRuntime::OnnxRuntime)
  add_library(OnnxRuntime::OnnxRuntime SHARED IMPORTED)
  set_target_properties(OnnxRuntime::OnnxRuntime PROPERTIES
    IMPORTED_LOCATION "${OnnxRuntime_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${OnnxRuntime_INCLUDE_DIR}")
  get_filename_component(OnnxRuntime_LIBRARY_DIR "${OnnxRuntime_LIBRARY}" DIRECTORY)
  set(CMAKE_BUILD_RPATH "${CMAKE_BUILD_RPATH};${OnnxRuntime_LIBRARY_DIR}")
  set(CMAKE_INSTALL_RPATH "${CMAKE_INSTALL_RPATH};${OnnxRuntime_LIBRARY_DIR}")
endif()
