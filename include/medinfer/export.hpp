// MEDINFER_API marks the symbols libmedinfer exports; everything else is hidden.
#pragma once

#if defined(MEDINFER_BUILDING_LIBRARY)
#define MEDINFER_API __attribute__((visibility("default")))
#else
#define MEDINFER_API
#endif
