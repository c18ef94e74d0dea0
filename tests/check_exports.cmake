# The shared library exports exactly the functions the public header declares with FAS_API:
# nothing internal (fasi_*, statics made global by mistake, symbols of linked-in code) and
# nothing declared but missing.
#
#   cmake -DLIB=<libfused_attention.so> -DHEADER=<include/fused_attention.h> [-DNM=<nm>]
#         -P tests/check_exports.cmake
cmake_minimum_required(VERSION 3.20)

foreach(var LIB HEADER)
  if(NOT DEFINED ${var} OR NOT EXISTS "${${var}}")
    message(FATAL_ERROR "check_exports: -D${var}=<path> is required and must exist (got '${${var}}')")
  endif()
endforeach()
if(NOT NM)
  find_program(NM NAMES nm REQUIRED)
endif()

# ---- the library's exports --------------------------------------------------------------------
execute_process(COMMAND "${NM}" -D --defined-only "${LIB}"
  OUTPUT_VARIABLE nm_out ERROR_VARIABLE nm_err RESULT_VARIABLE nm_rc)
if(NOT nm_rc EQUAL 0)
  message(FATAL_ERROR "check_exports: '${NM} -D --defined-only ${LIB}' failed (${nm_rc}): ${nm_err}")
endif()

# Symbols the linker itself may add to the dynamic table of any shared object (older binutils);
# they are not ours and not part of any API.
set(linker_symbols _init _fini _edata _end __bss_start)

set(exported)
string(REPLACE "\n" ";" nm_lines "${nm_out}")
foreach(line IN LISTS nm_lines)
  # "<address> <type> <name>[@@version]"; every defined dynamic symbol counts, whatever its
  # type (functions T/W/i, but also data D/B/R/V: an exported object would be a leak too).
  if(line MATCHES "^[0-9A-Fa-f]+ +([A-Za-z]) +([^ @]+)")
    set(name "${CMAKE_MATCH_2}")
    if(NOT name IN_LIST linker_symbols)
      list(APPEND exported "${name}")
    endif()
  elseif(NOT line STREQUAL "")
    message(FATAL_ERROR "check_exports: unexpected nm output line: '${line}'")
  endif()
endforeach()
list(REMOVE_DUPLICATES exported)

# ---- the header's FAS_API declarations --------------------------------------------------------
file(READ "${HEADER}" text)
# Drop /* */ comments (the overview's usage example names API functions), // comments and
# preprocessor lines (the #define FAS_API ... lines themselves).
set(stripped "")
while(TRUE)
  string(FIND "${text}" "/*" open)
  if(open EQUAL -1)
    string(APPEND stripped "${text}")
    break()
  endif()
  string(SUBSTRING "${text}" 0 ${open} before)
  string(APPEND stripped "${before} ")
  math(EXPR after_open "${open} + 2")
  string(SUBSTRING "${text}" ${after_open} -1 text)
  string(FIND "${text}" "*/" close)
  if(close EQUAL -1)
    message(FATAL_ERROR "check_exports: unterminated comment in ${HEADER}")
  endif()
  math(EXPR after_close "${close} + 2")
  string(SUBSTRING "${text}" ${after_close} -1 text)
endwhile()
string(REGEX REPLACE "//[^\n]*" "" stripped "${stripped}")
string(REGEX REPLACE "(^|\n)[ \t]*#[^\n]*" "\\1" stripped "${stripped}")
# Semicolons are list separators in CMake; make declarations end in a plain marker instead.
string(REPLACE ";" "<SEMI>" stripped "${stripped}")

# "FAS_API <return type> <name>(" — possibly across lines; the name is the last identifier
# before the first parenthesis.
string(REGEX MATCHALL "FAS_API[^(<]*\\(" decls "${stripped}")
set(declared)
foreach(decl IN LISTS decls)
  if(decl MATCHES "([A-Za-z_][A-Za-z0-9_]*)[ \t\r\n]*\\($")
    list(APPEND declared "${CMAKE_MATCH_1}")
  else()
    message(FATAL_ERROR "check_exports: cannot parse declaration '${decl}'")
  endif()
endforeach()
list(REMOVE_DUPLICATES declared)
if(NOT declared)
  message(FATAL_ERROR "check_exports: no FAS_API declarations found in ${HEADER}")
endif()

# ---- compare ------------------------------------------------------------------------------------
set(extra ${exported})
list(REMOVE_ITEM extra ${declared})
set(missing ${declared})
if(exported)
  list(REMOVE_ITEM missing ${exported})
endif()
list(SORT extra)
list(SORT missing)
list(LENGTH declared n_declared)
list(LENGTH exported n_exported)

if(extra OR missing)
  string(REPLACE ";" " " extra_text "${extra}")
  string(REPLACE ";" " " missing_text "${missing}")
  message(FATAL_ERROR
    "check_exports: ${LIB} exports ${n_exported} symbols, ${HEADER} declares ${n_declared}\n"
    "  exported but not declared with FAS_API: ${extra_text}\n"
    "  declared with FAS_API but not exported: ${missing_text}")
endif()
message(STATUS "check_exports: the ${n_exported} exported symbols are exactly the FAS_API declarations")
