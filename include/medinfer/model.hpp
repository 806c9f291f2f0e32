// Model packages and the engine that runs them (the umbrella of model_identity.hpp, model_package.hpp,
// engine.hpp and package.hpp, kept for hosts written against it).
#pragma once

#include <medinfer/engine.hpp>
#include <medinfer/model_identity.hpp>
#include <medinfer/model_package.hpp>
#include <medinfer/package.hpp>
