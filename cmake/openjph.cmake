# OpenJPH (Debian's libopenjph-dev): its pkg-config file is empty in Debian 12, so find it directly.
if(NOT TARGET medinfer_openjph)
  find_path(OPENJPH_INCLUDE_DIR openjph/ojph_codestream.h REQUIRED)
  find_library(OPENJPH_LIBRARY openjph REQUIRED)
  add_library(medinfer_openjph INTERFACE IMPORTED)
  set_target_properties(medinfer_openjph PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${OPENJPH_INCLUDE_DIR}"
                                                    INTERFACE_LINK_LIBRARIES "${OPENJPH_LIBRARY}")
endif()
