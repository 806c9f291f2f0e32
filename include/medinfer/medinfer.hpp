// The whole public API of medinfer. Only the C++17 standard library is included from here.
#pragma once

#include <medinfer/audit.hpp>
#include <medinfer/build_info.hpp>
#include <medinfer/calibration.hpp>
#include <medinfer/deidentify.hpp>
#include <medinfer/dicom.hpp>
#include <medinfer/engine.hpp>
#include <medinfer/error.hpp>
#include <medinfer/export.hpp>
#include <medinfer/image.hpp>
#include <medinfer/log.hpp>
#include <medinfer/model.hpp>
#include <medinfer/model_identity.hpp>
#include <medinfer/model_package.hpp>
#include <medinfer/package.hpp>
#include <medinfer/pipeline.hpp>
#include <medinfer/preprocess.hpp>
#include <medinfer/report.hpp>
#include <medinfer/risk.hpp>
#include <medinfer/series.hpp>
#include <medinfer/tensor.hpp>
#include <medinfer/version.hpp>
#include <medinfer/volume.hpp>
