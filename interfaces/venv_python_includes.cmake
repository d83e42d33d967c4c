# Passed with -DCMAKE_PROJECT_INCLUDE when an interface package is built against ROS wheels in a venv.
# The wheels' exported CMake targets name the include directories of the machine that built them
# (/opt/python/cp311-cp311/...: Python's headers and NumPy's). At the end of configuring, every
# imported target that names one gets this interpreter's directories instead.
execute_process(
  COMMAND "${Python3_EXECUTABLE}" -c
    "import sysconfig, numpy; print(sysconfig.get_paths()['include'] + ';' + numpy.get_include())"
  OUTPUT_VARIABLE _venv_python_includes OUTPUT_STRIP_TRAILING_WHITESPACE COMMAND_ERROR_IS_FATAL ANY)

function(_venv_repoint_python_includes)
  get_property(_targets DIRECTORY PROPERTY IMPORTED_TARGETS)
  foreach(_target IN LISTS _targets)
    get_target_property(_dirs ${_target} INTERFACE_INCLUDE_DIRECTORIES)
    if(_dirs AND "${_dirs}" MATCHES "/opt/python/")
      list(FILTER _dirs EXCLUDE REGEX "^/opt/python/")
      list(APPEND _dirs ${_venv_python_includes})
      list(REMOVE_DUPLICATES _dirs)
      set_target_properties(${_target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_dirs}")
    endif()
  endforeach()
endfunction()
cmake_language(DEFER CALL _venv_repoint_python_includes)
