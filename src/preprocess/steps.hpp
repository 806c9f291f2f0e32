// Internal: the step table's entry points (steps.cpp). Each step type of preprocess::Step has one
// StepDef there holding its name, parse, validation, 2D and volume application; these functions
// dispatch with std::visit, so a step type without a complete StepDef does not compile.
#pragma once

#include <medinfer/dicom.hpp>
#include <medinfer/preprocess.hpp>

#include "core/json_util.hpp"

#include <cstddef>
#include <string>

namespace medinfer::preprocess::detail {

struct PlaneRun;  // plane.hpp (OpenCV)
struct Grid;      // grid.hpp

/// One volume through the steps.
struct VolumeRun {
  Grid& g;
  const Context& context;
  unsigned threads = 0;
  std::size_t index = 0;  ///< the step being applied, for error messages
  int channels = 1;
};

/// Parses one element of the "preprocessing" array (`at` names it, e.g. "manifest.json: preprocessing[2]").
Step parse_step(const medinfer::detail::Json& s, const std::string& at);
/// Throws Error(kInvalidArgument) "preprocessing[i].field: ..." for an invalid value of spec.steps[i].
void validate_step(const Spec& spec, std::size_t i);
/// True for a step that only volumes can apply.
bool is_volumetric(const Step& step);
/// What an input step says about reading the file.
void read_options(const Step& step, dicom::ReadOptions& options);
void apply_step(const Step& step, PlaneRun& run);
void apply_step(const Step& step, VolumeRun& run);

}  // namespace medinfer::preprocess::detail
