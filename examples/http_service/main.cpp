// medinfer-serve: the library as an HTTP + DICOMweb service. Everything beyond networking is a library
// call: Pipeline::predict / predict_study, report::structured_report, to_json, the audit log. HTTP is
// cpp-httplib (Debian's libcpp-httplib-dev, TLS through OpenSSL), metrics prometheus-cpp's registry
// and text format. docs/serve.md describes the interface; the exit status is 0 after a clean drain,
// 1 when the model or the audit log cannot be opened, 2 for a usage or configuration error.
#include <medinfer/medinfer.hpp>

#include <httplib.h>  // Debian's libcpp-httplib: CPPHTTPLIB_OPENSSL_SUPPORT comes from its pkg-config flags

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include "../common/files.hpp"
#include "../common/settings.hpp"
#include "serve_config.hpp"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <thread>

extern char** environ;

namespace {

using Json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

// ---- API keys: compared as SHA-256 digests with CRYPTO_memcmp, every key tried (no early exit). ----
class KeySet {
 public:
  explicit KeySet(const std::vector<std::string>& keys) {
    for (const auto& k : keys) digests_.push_back(digest(k));
  }
  bool empty() const { return digests_.empty(); }
  bool contains(const std::string& key) const {
    const auto d = digest(key);
    bool found = false;
    for (const auto& x : digests_) found |= CRYPTO_memcmp(x.data(), d.data(), d.size()) == 0;
    return found;
  }

 private:
  static std::array<unsigned char, SHA256_DIGEST_LENGTH> digest(const std::string& s) {
    std::array<unsigned char, SHA256_DIGEST_LENGTH> d{};
    SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), d.data());
    return d;
  }
  std::vector<std::array<unsigned char, SHA256_DIGEST_LENGTH>> digests_;
};

// ---- The audit sink, counted for /metrics. ----
class CountingSink : public medinfer::audit::Sink {
 public:
  CountingSink(std::shared_ptr<medinfer::audit::Sink> inner, prometheus::Counter& written, prometheus::Counter& failed)
      : inner_(std::move(inner)), written_(written), failed_(failed) {}
  void write(const medinfer::audit::Record& r) override {
    try {
      inner_->write(r);
      written_.Increment();
    } catch (...) {
      failed_.Increment();
      throw;
    }
  }

 private:
  std::shared_ptr<medinfer::audit::Sink> inner_;
  prometheus::Counter& written_;
  prometheus::Counter& failed_;
};

// ---- Admission: `workers` predictions at once, `queue_depth` waiting; beyond that 503. ----
class Admission {
 public:
  Admission(int workers, int queue_depth) : workers_(workers), capacity_(workers + queue_depth) {}
  // false: full (the caller answers 503). Else the caller holds a slot until release().
  bool enter() {
    std::unique_lock<std::mutex> lock(m_);
    if (in_system_ >= capacity_) return false;
    ++in_system_;
    cv_.wait(lock, [&] { return running_ < workers_; });
    ++running_;
    return true;
  }
  void release() {
    {
      std::lock_guard<std::mutex> lock(m_);
      --running_;
      --in_system_;
    }
    cv_.notify_one();
  }
  int depth() const {
    std::lock_guard<std::mutex> lock(m_);
    return in_system_;
  }

 private:
  mutable std::mutex m_;
  std::condition_variable cv_;
  int workers_, capacity_, in_system_ = 0, running_ = 0;
};

struct Metrics {
  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  prometheus::Family<prometheus::Counter>& requests =
      prometheus::BuildCounter().Name("medinfer_http_requests_total").Help("HTTP requests by route and status").Register(*registry);
  prometheus::Family<prometheus::Histogram>& latency = prometheus::BuildHistogram()
      .Name("medinfer_http_request_duration_seconds").Help("HTTP request latency by route").Register(*registry);
  prometheus::Family<prometheus::Histogram>& inference = prometheus::BuildHistogram()
      .Name("medinfer_inference_duration_seconds").Help("Library time per prediction (Result::latency_ms)").Register(*registry);
  prometheus::Family<prometheus::Counter>& predictions = prometheus::BuildCounter()
      .Name("medinfer_predictions_total").Help("Findings predicted, by label and tier").Register(*registry);
  prometheus::Family<prometheus::Gauge>& queue = prometheus::BuildGauge()
      .Name("medinfer_queue_depth").Help("Requests admitted and not finished (running + waiting)").Register(*registry);
  prometheus::Family<prometheus::Histogram>& instances = prometheus::BuildHistogram()
      .Name("medinfer_request_instances").Help("DICOM instances per request (1 for /v1/predict)").Register(*registry);
  prometheus::Family<prometheus::Histogram>& batch = prometheus::BuildHistogram()
      .Name("medinfer_batch_size").Help("Images per model run, per /v1/predict prediction (Result::batch_size)").Register(*registry);
  prometheus::Family<prometheus::Counter>& audit = prometheus::BuildCounter()
      .Name("medinfer_audit_records_total").Help("Audit records by outcome (written, failed)").Register(*registry);
  prometheus::Family<prometheus::Gauge>& audit_dropped = prometheus::BuildGauge()
      .Name("medinfer_audit_records_dropped").Help("Audit records dropped by a full buffered queue").Register(*registry);
  prometheus::Family<prometheus::Counter>& swaps = prometheus::BuildCounter()
      .Name("medinfer_model_swaps_total").Help("Model hot swaps by outcome").Register(*registry);
  prometheus::Family<prometheus::Gauge>& ready = prometheus::BuildGauge()
      .Name("medinfer_ready").Help("1 when the model is loaded and warm and the service is not draining").Register(*registry);
  prometheus::Family<prometheus::Gauge>& model = prometheus::BuildGauge()
      .Name("medinfer_model_info").Help("The model served (1) by name, version and manifest SHA-256").Register(*registry);

  static prometheus::Histogram::BucketBoundaries seconds() {
    return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
  }
};

std::string error_status_name(int status) {
  switch (status) {
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    default: return "HTTP " + std::to_string(status);
  }
}

// An Error's HTTP status: the client's fault (400, 413), the service's (500), or busy (503).
int status_of(medinfer::ErrorCode code) {
  using medinfer::ErrorCode;
  switch (code) {
    case ErrorCode::kInvalidDicom:
    case ErrorCode::kUnsupported:
    case ErrorCode::kInvalidArgument:
    case ErrorCode::kNotFound:
      return 400;
    case ErrorCode::kResourceLimit: return 413;
    case ErrorCode::kCancelled: return 503;
    default: return 500;
  }
}

// The parts of a multipart/related (or multipart/form-data) body: RFC 2046 boundaries, each part's
// headers skipped. Throws std::invalid_argument for a malformed body.
std::vector<std::string> multipart_parts(const std::string& content_type, const std::string& body) {
  const std::size_t b = content_type.find("boundary=");
  if (content_type.rfind("multipart/", 0) != 0 || b == std::string::npos) {
    throw std::invalid_argument("expected a multipart/related body with a boundary parameter");
  }
  std::string boundary = content_type.substr(b + 9);
  const std::size_t semi = boundary.find(';');
  if (semi != std::string::npos) boundary.resize(semi);
  if (!boundary.empty() && boundary.front() == '"') boundary = boundary.substr(1, boundary.find('"', 1) - 1);
  if (boundary.empty() || boundary.size() > 70) throw std::invalid_argument("the multipart boundary is empty or too long");
  const std::string delimiter = "--" + boundary;
  std::vector<std::string> parts;
  std::size_t pos = body.find(delimiter);
  if (pos == std::string::npos) throw std::invalid_argument("the body holds no multipart boundary");
  while (true) {
    pos += delimiter.size();
    if (body.compare(pos, 2, "--") == 0) break;  // the close delimiter
    if (body.compare(pos, 2, "\r\n") != 0) throw std::invalid_argument("a multipart boundary is not followed by CRLF");
    pos += 2;
    const std::size_t headers_end = body.find("\r\n\r\n", pos);
    const std::size_t next = body.find("\r\n" + delimiter, pos);
    if (next == std::string::npos) throw std::invalid_argument("the multipart body has no close delimiter (truncated)");
    std::size_t start = pos;
    if (body.compare(pos, 2, "\r\n") == 0) {
      start = pos + 2;  // a part without headers
    } else {
      if (headers_end == std::string::npos || headers_end > next) throw std::invalid_argument("a multipart part has no header end");
      start = headers_end + 4;
    }
    parts.push_back(body.substr(start, next - start));
    pos = next + 2;
  }
  return parts;
}

std::string request_id_of(const httplib::Request& req) {
  const std::string given = req.get_header_value("X-Request-Id");
  const bool usable = !given.empty() && given.size() <= 128 &&
                      std::all_of(given.begin(), given.end(), [](char c) { return c > 0x20 && c < 0x7f; });
  if (usable) return given;
  // a new one: 16 random bytes as hex
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(rng()),
                static_cast<unsigned long long>(rng()));
  return buf;
}

class Service {
 public:
  Service(ServeConfig config) : config_(std::move(config)), keys_(config_.api_keys), admin_keys_(config_.admin_keys),
                                admission_(config_.workers, config_.queue_depth) {}

  int run();

 private:
  void open();
  void routes(httplib::Server& svr);
  bool authorized(const httplib::Request& req, httplib::Response& res, const KeySet& keys, bool admin);
  void reply(httplib::Response& res, int status, const Json& body, const std::string& request_id);
  void reply_text(httplib::Response& res, int status, std::string body, const char* content_type,
                  const std::string& request_id);
  void reply_error(httplib::Response& res, int status, const std::string& code, const std::string& message,
                   const std::string& request_id);
  // Runs `work` under admission (503 when full) and maps errors to statuses.
  void guarded(const std::string& id, httplib::Response& res, std::size_t instances,
               const std::function<void()>& work);
  void predict(const httplib::Request& req, httplib::Response& res, std::shared_ptr<const std::string> body);
  void studies(const httplib::Request& req, httplib::Response& res, const std::string& body, bool dicomweb);
  Json models() const;
  void reload(const std::string& dir);
  std::string model_dir_for(const std::string& name) const;
  void count_findings(const medinfer::Result& r);

  ServeConfig config_;
  KeySet keys_, admin_keys_;
  Admission admission_;
  Metrics metrics_;
  medinfer::audit::OpenedLog log_;
  std::optional<medinfer::Pipeline> pipeline_;
  std::atomic<bool> ready_{false};
  std::mutex reload_mutex_;
  fs::path spool_;  // mkdtemp: 0700, a name no one else can predict or pre-create
  std::atomic<unsigned long long> spool_serial_{0};
};

void Service::open() {
  medinfer::PipelineOptions options;
  options.actor.application_id = "medinfer-serve";
  options.batching.max_batch_size = config_.max_batch_size > 1 ? config_.max_batch_size : 0;
  options.batching.max_delay_us = config_.max_batch_delay_us;
  if (!config_.audit_log.empty()) {
    medinfer::audit::LogRequest request;
    request.path = config_.audit_log;
    request.key_file = config_.audit_key;
    request.witness_path = config_.audit_witness;
    log_ = medinfer::audit::open_log(request);
    options.audit_sink = std::make_shared<CountingSink>(log_.sink, metrics_.audit.Add({{"outcome", "written"}}),
                                                        metrics_.audit.Add({{"outcome", "failed"}}));
    options.pseudonym_key = log_.pseudonym_key;
  }
  pipeline_.emplace(medinfer::Pipeline::open(config_.model, options));  // verified, loaded and warmed up
  if (!config_.sr_dir.empty()) {
    std::error_code ec;
    fs::create_directories(config_.sr_dir, ec);
    const fs::path probe = fs::path(config_.sr_dir) / (".probe." + std::to_string(getpid()));
    std::ofstream(probe).put('x');
    if (!fs::exists(probe, ec)) {
      throw medinfer::Error(medinfer::ErrorCode::kIo, "sr_dir " + config_.sr_dir + ": cannot write there");
    }
    fs::remove(probe, ec);
  }
  const medinfer::ModelIdentity id = pipeline_->model();
  metrics_.model.Add({{"name", id.name}, {"version", id.version}, {"sha256", id.sha256}}).Set(1);
  std::string spool_template = (fs::temp_directory_path() / "medinfer-serve-XXXXXX").string();
  if (mkdtemp(spool_template.data()) == nullptr) {
    throw medinfer::Error(medinfer::ErrorCode::kIo, "cannot create a spool folder under " +
                                                        fs::temp_directory_path().string());
  }
  spool_ = spool_template;
}

void Service::reply(httplib::Response& res, int status, const Json& body, const std::string& request_id) {
  reply_text(res, status, body.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n", "application/json",
             request_id);
}

// Every answer's status, X-Request-Id (when there is one) and body in one place.
void Service::reply_text(httplib::Response& res, int status, std::string body, const char* content_type,
                         const std::string& request_id) {
  res.status = status;
  if (!request_id.empty()) res.set_header("X-Request-Id", request_id);
  res.set_content(std::move(body), content_type);
}

void Service::reply_error(httplib::Response& res, int status, const std::string& code, const std::string& message,
                          const std::string& request_id) {
  Json body{{"error", {{"code", code}, {"message", message}}}};
  if (!request_id.empty()) body["request_id"] = request_id;
  reply(res, status, body, request_id);
}

bool Service::authorized(const httplib::Request& req, httplib::Response& res, const KeySet& keys, bool admin) {
  if (keys.empty() && !admin) return true;  // no keys configured: open (a warning was printed at start)
  if (keys.empty()) {
    reply_error(res, 403, "forbidden", "admin endpoints are off (no admin_keys_file)", "");
    return false;
  }
  const std::string auth = req.get_header_value("Authorization");
  if (auth.rfind("Bearer ", 0) != 0 || auth.size() <= 7) {
    res.set_header("WWW-Authenticate", "Bearer");
    reply_error(res, 401, "unauthorized", "an API key is required: Authorization: Bearer KEY", "");
    return false;
  }
  if (!keys.contains(auth.substr(7))) {
    reply_error(res, 403, "forbidden", "the API key is not valid here", "");
    return false;
  }
  return true;
}

void Service::count_findings(const medinfer::Result& r) {
  metrics_.inference.Add({}, Metrics::seconds()).Observe(r.latency_ms / 1000.0);
  for (const medinfer::Finding& f : r.findings) metrics_.predictions.Add({{"label", f.label}, {"tier", f.tier}}).Increment();
}

void Service::guarded(const std::string& id, httplib::Response& res, std::size_t instances,
                      const std::function<void()>& work) {
  // Draining only turns /health/ready off: a request accepted before the listener closes is served.
  if (!admission_.enter()) {
    res.set_header("Retry-After", "1");
    return reply_error(res, 503, "busy", "the work queue is full; retry", id);
  }
  metrics_.queue.Add({}).Set(admission_.depth());
  metrics_.instances.Add({}, prometheus::Histogram::BucketBoundaries{1, 2, 5, 10, 20, 50, 100, 200, 500}).Observe(
      static_cast<double>(instances));
  try {
    work();
  } catch (const medinfer::Error& e) {
    reply_error(res, status_of(e.code()), medinfer::to_string(e.code()), e.what(), id);
  } catch (const std::invalid_argument& e) {
    reply_error(res, 400, "bad_request", e.what(), id);
  } catch (const std::exception& e) {
    reply_error(res, 500, "internal", e.what(), id);
  }
  admission_.release();
  metrics_.queue.Add({}).Set(admission_.depth());
}

void Service::predict(const httplib::Request& req, httplib::Response& res, std::shared_ptr<const std::string> body) {
  const std::string id = request_id_of(req);
  guarded(id, res, 1, [&] {
    if (body->empty()) throw std::invalid_argument("the body must be one DICOM Part 10 object (application/dicom)");
    medinfer::Input input = medinfer::Input::dicom(std::move(body), "request " + id);  // the bytes, not a copy
    input.request_id = id;
    const medinfer::Result r = pipeline_->predict(input);
    count_findings(r);
    metrics_.batch.Add({}, prometheus::Histogram::BucketBoundaries{1, 2, 4, 8, 16, 32, 64, 128, 256})
        .Observe(static_cast<double>(r.batch_size));
    // The library's JSON object with "request_id" added as its last member (no parse and re-dump).
    std::string out = medinfer::to_json(r);
    out.pop_back();  // the closing '}'
    out += ",\"request_id\":" + Json(id).dump() + "}\n";
    reply_text(res, 200, std::move(out), "application/json", id);
  });
}

void Service::studies(const httplib::Request& req, httplib::Response& res, const std::string& body, bool dicomweb) {
  std::vector<std::string> parts;
  const std::string id = request_id_of(req);
  try {
    parts = multipart_parts(req.get_header_value("Content-Type"), body);
  } catch (const std::invalid_argument& e) {
    return reply_error(res, 400, "bad_request", e.what(), id);
  }
  guarded(id, res, parts.size(), [&] {
    // The parts as files in the service's private spool folder (predict_study scans files), removed
    // afterwards. The folder's name is the service's own counter: no client string (X-Request-Id, a
    // UID, a part header) ever becomes a path.
    const fs::path dir = spool_ / ("r" + std::to_string(spool_serial_.fetch_add(1)));
    fs::create_directory(dir);
    struct Cleanup {
      fs::path p;
      ~Cleanup() {
        std::error_code ec;
        fs::remove_all(p, ec);
      }
    } cleanup{dir};
    std::vector<std::string> files;
    for (std::size_t i = 0; i < parts.size(); ++i) {
      const fs::path f = dir / (std::to_string(i) + ".dcm");
      std::ofstream out(f, std::ios::binary);
      out.write(parts[i].data(), static_cast<std::streamsize>(parts[i].size()));
      out.flush();
      if (!out) throw medinfer::Error(medinfer::ErrorCode::kIo, "cannot spool part " + std::to_string(i) + " of the request");
      files.push_back(f.string());
    }
    medinfer::ManyOptions many;
    many.workers = 1;  // one request's share of the cores; concurrency comes from the requests
    const medinfer::StudyResult study = pipeline_->predict_study(files, many);
    for (const auto& s : study.series) count_findings(s);
    Json result = Json::parse(medinfer::to_json(study));
    result["request_id"] = id;
    if (!config_.sr_dir.empty() && !study.series.empty()) {
      // The file is named after the study's UID only when it is one (digits and dots): an uploaded
      // header is a client string. Checked before anything is made.
      if (!medinfer::report::valid_uid(study.study_instance_uid)) {
        throw medinfer::Error(medinfer::ErrorCode::kInvalidDicom,
                              "Study Instance UID (0020,000D) is not a valid UID; no SR written");
      }
      medinfer::report::ReportOptions ro;
      ro.label_codes = medinfer::report::label_codes(*pipeline_->package());
      const auto sr = medinfer::report::structured_report(study, files, ro);
      const fs::path out = fs::path(config_.sr_dir) / (study.study_instance_uid + ".sr.dcm");
      host::write_whole(out.string(), sr.bytes);
      result["sr"] = out.string();
    }
    if (!dicomweb || req.get_header_value("Accept").find("application/json") != std::string::npos) {
      return reply(res, 200, result, id);
    }
    // STOW-RS: the Store Instances Response (DICOM JSON): Referenced SOP Sequence, Failed SOP Sequence.
    Json referenced = Json::array(), failed = Json::array();
    std::set<std::string> bad_files;
    for (const auto& s : study.skipped_files) bad_files.insert(s.path);
    for (const auto& f : files) {
      Json item;
      if (bad_files.count(f) != 0) {
        item["00081197"] = {{"vr", "US"}, {"Value", {272}}};  // Failure Reason: processing failure
        failed.push_back(item);
        continue;
      }
      const medinfer::dicom::ImageHeader h = medinfer::dicom::read_header(f);
      item["00081150"] = {{"vr", "UI"}, {"Value", {h.sop_class_uid}}};
      item["00081155"] = {{"vr", "UI"}, {"Value", {h.sop_instance_uid}}};
      referenced.push_back(item);
    }
    Json stow = Json::object();
    if (!referenced.empty()) stow["00081199"] = {{"vr", "SQ"}, {"Value", referenced}};
    if (!failed.empty()) stow["00081198"] = {{"vr", "SQ"}, {"Value", failed}};
    reply_text(res, failed.empty() ? 200 : 202, stow.dump() + "\n", "application/dicom+json", id);
  });
}

Json Service::models() const {
  const auto pkg = pipeline_->package();
  const medinfer::Deployment d = pipeline_->deployment();
  Json primary{{"name", d.primary.name}, {"version", d.primary.version}, {"sha256", d.primary.sha256},
               {"task", medinfer::to_string(pkg->task())}, {"labels", pkg->labels()},
               {"input_shape", pkg->input_shape()}, {"intended_use", pkg->intended_use()}};
  Json out{{"primary", primary}};
  if (!d.candidate.name.empty()) {
    out["candidate"] = {{"name", d.candidate.name}, {"version", d.candidate.version}, {"sha256", d.candidate.sha256},
                        {"fraction", d.candidate_fraction}};
  }
  return out;
}

// The package directory /admin/reload may load for the body's `name`: the configured model, or a
// package directly under models_root. Throws std::invalid_argument for anything else.
std::string Service::model_dir_for(const std::string& name) const {
  if (name == config_.model) return config_.model;
  if (config_.models_root.empty()) {
    throw std::invalid_argument("only the configured model can be reloaded (set models_root to allow others)");
  }
  const bool plain = !name.empty() && name.size() <= 255 && name != "." && name != ".." &&
                     std::all_of(name.begin(), name.end(), [](char c) {
                       return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                              c == '.' || c == '-' || c == '_';
                     });
  if (!plain) throw std::invalid_argument("model: a package name under models_root (letters, digits, . - _), not a path");
  std::error_code root_ec, dir_ec;
  const fs::path root = fs::weakly_canonical(config_.models_root, root_ec);
  const fs::path dir = fs::weakly_canonical(root / name, dir_ec);
  if (root_ec || dir_ec || dir.parent_path() != root) {
    throw std::invalid_argument("model: " + name + " is not a package under models_root");
  }
  return dir.string();
}

void Service::reload(const std::string& dir) {
  std::lock_guard<std::mutex> lock(reload_mutex_);
  const medinfer::ModelIdentity before = pipeline_->model();
  try {
    const medinfer::ModelIdentity after = pipeline_->swap_model(dir);
    metrics_.swaps.Add({{"outcome", "ok"}}).Increment();
    metrics_.model.Add({{"name", before.name}, {"version", before.version}, {"sha256", before.sha256}}).Set(0);
    metrics_.model.Add({{"name", after.name}, {"version", after.version}, {"sha256", after.sha256}}).Set(1);
    std::cerr << "medinfer-serve: model swapped: " << before.version << " -> " << after.version << "\n";
  } catch (const medinfer::Error& e) {
    metrics_.swaps.Add({{"outcome", "refused"}}).Increment();
    throw;
  }
}

void Service::routes(httplib::Server& svr) {
  svr.set_payload_max_length(config_.max_body_bytes);  // larger bodies: 413 before a byte is kept
  svr.set_tcp_nodelay(true);  // without it Nagle + delayed ACK add ~40 ms to every small response (measured)
  // A load balancer keeps upstream connections open: let it reuse each for many requests (httplib closes
  // after 5 by default, and a closing connection reused by nginx is a 502). Idle ones close after 5 s,
  // so the balancer's upstream idle timeout must be shorter (docs/serve.md).
  svr.set_keep_alive_max_count(10000);
  svr.set_keep_alive_timeout(5);
  svr.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    const bool open = req.path == "/health/live" || req.path == "/health/ready" || req.path == "/metrics";
    if (open) return httplib::Server::HandlerResponse::Unhandled;
    const bool admin = req.path.rfind("/admin/", 0) == 0;
    if (!authorized(req, res, admin ? admin_keys_ : keys_, admin)) return httplib::Server::HandlerResponse::Handled;
    return httplib::Server::HandlerResponse::Unhandled;
  });
  svr.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    // Only the route template and the status are labels (never the path's parameters or any key).
    static const std::set<std::string> known = {"/v1/predict", "/v1/studies", "/dicomweb/studies", "/v1/models",
                                                "/health/live", "/health/ready", "/metrics", "/admin/reload"};
    const std::string route = known.count(req.path) ? req.path : "other";
    metrics_.requests.Add({{"route", route}, {"status", std::to_string(res.status)}}).Increment();
  });
  svr.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return;
    Json body{{"error", {{"code", res.status == 413 ? "payload_too_large" : "http_" + std::to_string(res.status)},
                         {"message", error_status_name(res.status)}}}};
    res.set_content(body.dump() + "\n", "application/json");
  });
  // Bodies are read through a content reader: whatever the Content-Type says (curl's default is
  // application/x-www-form-urlencoded), the bytes are the client's DICOM, never parsed as a form.
  auto timed = [this](const char* route,
                       std::function<void(const httplib::Request&, httplib::Response&, std::shared_ptr<std::string>)> f) {
    return [this, route, f](const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader) {
      const auto t0 = Clock::now();
      auto buffer = std::make_shared<std::string>();  // handed to the library as it is: never copied
      std::string& body = *buffer;
      // A declared length over the limit is refused unread (httplib skips such a body itself); a
      // chunked body is cut off when it grows past it. A declared length within it is reserved once, up
      // to 16 MiB (a client declaring more and sending little never holds more than that unsent).
      const unsigned long long declared =
          req.has_header("Content-Length") ? std::strtoull(req.get_header_value("Content-Length").c_str(), nullptr, 10) : 0;
      bool too_large = declared > config_.max_body_bytes;
      if (!too_large) body.reserve(static_cast<std::size_t>(std::min<unsigned long long>(declared, 16u << 20)));
      if (!too_large) reader([&](const char* data, std::size_t n) {
        if (body.size() + n > config_.max_body_bytes) {
          too_large = true;
          return false;  // stop reading: nothing more is kept
        }
        body.append(data, n);
        return true;
      });
      if (too_large) {
        reply_error(res, 413, "payload_too_large",
                    "the body is larger than max_body_bytes (" + std::to_string(config_.max_body_bytes) + ")",
                    request_id_of(req));
        res.set_header("Connection", "close");
      } else {
        f(req, res, std::move(buffer));
      }
      metrics_.latency.Add({{"route", route}}, Metrics::seconds())
          .Observe(std::chrono::duration<double>(Clock::now() - t0).count());
    };
  };
  svr.Post("/v1/predict", timed("/v1/predict", [this](const auto& req, auto& res, auto body) { predict(req, res, std::move(body)); }));
  svr.Post("/v1/studies", timed("/v1/studies", [this](const auto& req, auto& res, auto body) {
    studies(req, res, *body, false);
  }));
  svr.Post("/dicomweb/studies", timed("/dicomweb/studies", [this](const auto& req, auto& res, auto body) {
    studies(req, res, *body, true);
  }));
  svr.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) { reply(res, 200, models(), ""); });
  svr.Get("/health/live", [this](const httplib::Request&, httplib::Response& res) {
    reply(res, 200, Json{{"status", "live"}}, "");
  });
  svr.Get("/health/ready", [this](const httplib::Request&, httplib::Response& res) {
    if (ready_) return reply(res, 200, Json{{"status", "ready"}, {"model", pipeline_->model().version}}, "");
    reply(res, 503, Json{{"status", "not_ready"}}, "");
  });
  svr.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    metrics_.ready.Add({}).Set(ready_ ? 1 : 0);
    metrics_.queue.Add({}).Set(admission_.depth());
    if (log_.chain) metrics_.audit_dropped.Add({}).Set(static_cast<double>(log_.chain->dropped()));
    std::ostringstream out;
    prometheus::TextSerializer().Serialize(out, metrics_.registry->Collect());
    res.set_content(out.str(), "text/plain; version=0.0.4; charset=utf-8");
  });
  svr.Post("/admin/reload", [this](const httplib::Request& req, httplib::Response& res) {
    // The body names a package, never a path: {"model": NAME} is NAME under models_root (one path
    // component, resolved and checked to stay there, symbolic links included), or the configured
    // --model exactly as configured. Anything else is refused before the file system is touched.
    std::string dir = config_.model;
    if (!req.body.empty()) {
      std::string name;
      try {
        name = Json::parse(req.body).at("model").get<std::string>();
      } catch (const std::exception&) {
        return reply_error(res, 400, "bad_request", "expected {\"model\": NAME} or an empty body", "");
      }
      try {
        dir = model_dir_for(name);
      } catch (const std::invalid_argument& e) {
        return reply_error(res, 403, "forbidden", e.what(), "");
      }
    }
    try {
      reload(dir);
      reply(res, 200, models(), "");
    } catch (const medinfer::Error& e) {
      reply_error(res, 422, medinfer::to_string(e.code()), e.what(), "");
    }
  });
}

int Service::run() {
  // Signals go to one thread (sigwait); every other thread starts with them blocked.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  try {
    open();
  } catch (const medinfer::Error& e) {
    std::cerr << "medinfer-serve: " << medinfer::to_string(e.code()) << ": " << e.what() << "\n";
    return 1;
  }
  if (keys_.empty()) std::cerr << "medinfer-serve: warning: no API keys configured: /v1 and /dicomweb are open to anyone who can connect\n";
  std::unique_ptr<httplib::Server> svr;
  if (!config_.tls_cert.empty()) {
    auto ssl = std::make_unique<httplib::SSLServer>(config_.tls_cert.c_str(), config_.tls_key.c_str());
    if (!ssl->is_valid()) {
      std::cerr << "medinfer-serve: the TLS certificate or key cannot be used (" << config_.tls_cert << ", "
                << config_.tls_key << ")\n";
      return 2;
    }
    svr = std::move(ssl);
  } else {
    svr = std::make_unique<httplib::Server>();
  }
  const std::size_t threads = static_cast<std::size_t>(config_.http_threads);
  svr->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  routes(*svr);
  int port = config_.port;
  if (port == 0) {
    port = svr->bind_to_any_port(config_.host);
  } else if (!svr->bind_to_port(config_.host, port)) {
    port = -1;
  }
  if (port < 0) {
    std::cerr << "medinfer-serve: cannot listen on " << config_.listen << "\n";
    return 1;
  }
  ready_ = true;  // the model is loaded and warm (Pipeline::open warms it up)
  std::thread server([&] { svr->listen_after_bind(); });
  std::cout << "ready " << config_.host << ":" << port << std::endl;  // scripts wait for this line

  int stop_signal = 0;
  while (stop_signal == 0) {
    int sig = 0;
    sigwait(&signals, &sig);
    if (sig == SIGHUP) {
      std::thread([this] {
        try {
          reload(config_.model);
        } catch (const medinfer::Error& e) {
          std::cerr << "medinfer-serve: SIGHUP reload refused: " << medinfer::to_string(e.code()) << ": " << e.what() << "\n";
        }
      }).detach();
      continue;
    }
    stop_signal = sig;
  }
  // Drain: not ready (load balancers stop sending), then stop accepting; requests already accepted
  // finish (the server's workers drain their queue before listen returns).
  ready_ = false;
  std::cerr << "medinfer-serve: draining\n";
  if (config_.drain_seconds > 0) std::this_thread::sleep_for(std::chrono::seconds(config_.drain_seconds));
  svr->stop();
  server.join();
  if (log_.chain) {
    try {
      log_.chain->close();
    } catch (const medinfer::Error& e) {
      std::cerr << "medinfer-serve: audit log: " << e.what() << "\n";
    }
  }
  std::error_code ec;
  fs::remove_all(spool_, ec);
  std::cerr << "medinfer-serve: stopped\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"medinfer-serve: the medinfer library as an HTTP + DICOMweb inference service (docs/serve.md)"};
  std::string config_file;
  std::map<std::string, std::string> overrides;
  bool check = false;
  auto opt = [&](const char* flag, const char* key, const char* help) {
    app.add_option_function<std::string>(flag, [&overrides, key](const std::string& v) { overrides[key] = v; }, help);
  };
  app.add_option("--config", config_file, "a JSON file of settings (keys as the options' names with _; docs/serve.md)");
  opt("--model", "model", "the model package directory");
  opt("--listen", "listen", "HOST:PORT to listen on (port 0: any free port, printed on the ready line)");
  opt("--api-keys", "api_keys_file", "a file with one API key per line (also $MEDINFER_API_KEYS, comma-separated)");
  opt("--admin-keys", "admin_keys_file", "a file of keys for /admin/reload (none: admin endpoints off)");
  opt("--models-root", "models_root", "/admin/reload may load {\"model\": NAME} from DIR/NAME (none: only --model)");
  opt("--tls-cert", "tls_cert", "PEM certificate: serve HTTPS");
  opt("--tls-key", "tls_key", "PEM private key of --tls-cert");
  opt("--audit-log", "audit_log", "append one audit record per prediction to FILE");
  opt("--audit-key", "audit_key", "make the audit log an HMAC chain under KEYFILE (default $MEDINFER_AUDIT_KEY)");
  opt("--audit-witness", "audit_witness", "append each checkpoint's head to this witness file");
  opt("--sr-dir", "sr_dir", "write each study's DICOM SR (TID 1500) into DIR");
  opt("--workers", "workers", "predictions running at once (default 0: one per core)");
  opt("--queue-depth", "queue_depth", "requests waiting beyond them; more are answered 503 with Retry-After (default 64)");
  opt("--max-body-bytes", "max_body_bytes", "larger request bodies are answered 413 (default 268435456)");
  opt("--http-threads", "http_threads", "connections served at once, idle keep-alive ones included (default 128)");
  opt("--max-batch-size", "max_batch_size", "concurrent single predictions merged into one model run by the dynamic batcher (default 1: off)");
  opt("--max-batch-delay-us", "max_batch_delay_us", "with --max-batch-size: the longest a batch waits to fill after its first request (default 2000)");
  opt("--drain-seconds", "drain_seconds", "after SIGTERM, stay up (not ready) this long before closing (default 0)");
  app.add_flag("--check-config", check, "validate the configuration, print it (keys redacted) and exit");
  app.footer("Environment: MEDINFER_SERVE_<KEY> overrides the config file (MEDINFER_SERVE_LISTEN, ...); the command "
             "line overrides both. Exit status: 0 after a clean drain (SIGTERM/SIGINT) or a valid --check-config, 1 "
             "the model or the audit log could not be opened, 2 usage or configuration error.");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  const std::map<std::string, std::string> environment = host::environment_of(environ);
  ServeConfig config;
  try {
    config = load_config(config_file, environment, overrides);
  } catch (const std::invalid_argument& e) {
    std::cerr << "medinfer-serve: configuration: " << e.what() << "\n";
    return 2;
  }
  if (check) {
    std::cout << describe(config) << std::endl;
    return 0;
  }
  return Service(std::move(config)).run();
}
