// medinfer-dicom-node: a DICOM node a PACS sends studies to (DCMTK dcmnet). C-ECHO and C-STORE SCP for
// the calling AE titles it allows; every instance written durably (fsync, rename) to a spool folder
// before success is answered; a series idle for N seconds is predicted (Pipeline::predict_series), its
// DICOM SR written (report::structured_report) and sent by C-STORE to the destination AE. Restart
// resumes every series received but not reported; SIGTERM stops accepting, finishes the series in
// flight and exits. docs/dicom-node.md.
#include <medinfer/medinfer.hpp>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "../common/files.hpp"
#include "../common/settings.hpp"
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmnet/dstorscu.h>
#include <dcmtk/dcmnet/scp.h>

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

extern char** environ;

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::atomic<bool> g_stop{false};
extern "C" void on_stop(int) { g_stop = true; }

void log_line(const std::string& s) { std::cerr << "medinfer-dicom-node: " << s << std::endl; }


struct Options {
  std::string model, aet = "MEDINFER", spool, destination, sr_dir, fhir_dir, audit_log, audit_key;
  std::vector<std::string> allow;
  int port = 11112;
  double idle_seconds = 10;
  bool on_release = false;  // "trigger": "release": a series is complete when its association is released
};

struct Destination {
  std::string aet, host;
  Uint16 port = 0;
};

class Node;

// The SCP side: one association at a time (DcmSCP), instances spooled before success is answered.
class StoreSCP : public DcmSCP {
 public:
  StoreSCP(Node& node, const Options& o)
      : node_(node), allow_(o.allow.begin(), o.allow.end()), spool_(o.spool), on_release_(o.on_release) {}

 protected:
  OFBool checkCallingAETitleAccepted(const OFString& calling) override { return allow_.count(calling.c_str()) != 0; }
  OFBool stopAfterConnectionTimeout() override { return g_stop.load(); }
  OFBool stopAfterCurrentAssociation() override { return g_stop.load(); }
  void notifyAssociationTermination() override;
  void notifyAbortRequest() override {
    aborted_ = true;  // an aborted association did not complete its series
    DcmSCP::notifyAbortRequest();
  }
  OFCondition handleIncomingCommand(T_DIMSE_Message* msg, const DcmPresentationContextInfo& info) override;

 private:
  Node& node_;
  std::set<std::string> allow_;
  std::string spool_;
  std::size_t received_ = 0, refused_ = 0;  // in the current association
  std::set<std::string> series_;            // the series it brought
  bool on_release_ = false, aborted_ = false;
};

class Node {
 public:
  Node(Options o, std::optional<Destination> dest, medinfer::Pipeline pipeline)
      : o_(std::move(o)), dest_(std::move(dest)), pipeline_(std::move(pipeline)) {}

  // The received file `tmp` (in the spool): its series folder, renamed into place and synced.
  // Returns the DIMSE status to answer.
  Uint16 accept(const fs::path& tmp, std::string& series);
  // The study-complete trigger: these series are predicted now (their association was released).
  void complete(const std::set<std::string>& series);
  // One audit record (dicom_transfer); a failing audit sink is reported on stderr.
  void audit(const std::string& detail, bool failed);
  void resume();  // series received but not reported, from an earlier run
  void work();    // the prediction thread: until stopped, then the series in flight is finished

 private:
  void process(const std::string& series);
  bool send(const fs::path& sr);

  Options o_;
  std::optional<Destination> dest_;
  medinfer::Pipeline pipeline_;
  std::mutex m_;
  std::map<std::string, Clock::time_point> pending_;  // series -> last instance received
  std::map<std::string, int> attempts_;
};

void Node::complete(const std::set<std::string>& series) {
  std::lock_guard<std::mutex> lock(m_);
  for (const auto& uid : series) {
    const auto it = pending_.find(uid);
    if (it != pending_.end()) it->second = Clock::time_point{};  // idle since ever: next in line
  }
}

Uint16 Node::accept(const fs::path& tmp, std::string& series) {
  std::error_code ec;
  medinfer::dicom::ImageHeader h;
  try {
    h = medinfer::dicom::read_header(tmp.string());
  } catch (const medinfer::Error& e) {
    log_line(std::string("refused an instance: ") + e.what());
    fs::remove(tmp, ec);
    return STATUS_STORE_Error_CannotUnderstand;
  }
  if (!medinfer::report::valid_uid(h.series_instance_uid) || !medinfer::report::valid_uid(h.sop_instance_uid)) {
    log_line("refused an instance whose Series or SOP Instance UID is not a UID");
    fs::remove(tmp, ec);
    return STATUS_STORE_Error_CannotUnderstand;
  }
  const fs::path dir = fs::path(o_.spool) / h.series_instance_uid;
  fs::create_directories(dir, ec);
  const fs::path dst = dir / (h.sop_instance_uid + ".dcm");
  if (!host::sync_path(tmp, false) || std::rename(tmp.c_str(), dst.c_str()) != 0 || !host::sync_path(dir, true) ||
      !host::sync_path(o_.spool, true)) {
    log_line("cannot spool " + dst.string());
    fs::remove(tmp, ec);
    return STATUS_STORE_Refused_OutOfResources;
  }
  {
    std::lock_guard<std::mutex> lock(m_);
    pending_[h.series_instance_uid] = Clock::now();
    series = h.series_instance_uid;
    // a series that gets new instances is predicted again (a new report), whatever became of the last
    fs::remove(dir / ".reported", ec);
    fs::remove(dir / ".failed", ec);
    fs::remove(dir / "report.sr", ec);
  }
  return STATUS_Success;
}

void Node::audit(const std::string& detail, bool failed) {
  try {
    pipeline_.record_event(medinfer::audit::EventType::kDicomTransfer, detail,
                           failed ? medinfer::audit::Outcome::kError : medinfer::audit::Outcome::kOk);
  } catch (const medinfer::Error& e) {
    log_line(std::string("audit: ") + e.what());
  }
}

void Node::resume() {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(o_.spool, ec)) {
    if (!e.is_directory() || !medinfer::report::valid_uid(e.path().filename().string())) continue;
    if (fs::exists(e.path() / ".reported") || fs::exists(e.path() / ".failed")) continue;
    std::lock_guard<std::mutex> lock(m_);
    pending_[e.path().filename().string()] = Clock::now();
    log_line("resuming series " + e.path().filename().string());
  }
}

bool Node::send(const fs::path& sr) {
  if (!dest_) return true;
  DcmStorageSCU scu;
  scu.setAETitle(o_.aet.c_str());
  scu.setPeerAETitle(dest_->aet.c_str());
  scu.setPeerHostName(dest_->host.c_str());
  scu.setPeerPort(dest_->port);
  scu.setACSETimeout(30);
  scu.setDIMSETimeout(60);
  OFCondition c = scu.addDicomFile(sr.c_str());
  if (c.good()) c = scu.addPresentationContexts();
  if (c.good()) c = scu.initNetwork();
  if (c.good()) c = scu.negotiateAssociation();
  if (c.good()) c = scu.sendSOPInstances();
  scu.releaseAssociation();
  const std::string to = dest_->aet + "@" + dest_->host + ":" + std::to_string(dest_->port);
  if (c.bad()) {
    log_line("sending the SR to " + to + " failed: " + c.text());
    audit("sending an SR to " + to + " failed: " + c.text(), true);
    return false;
  }
  OFString summary;
  scu.getStatusSummary(summary);
  const bool all_sent = scu.getNumberOfSOPInstancesToBeSent() == 0 && summary.find("failed") == OFString_npos;
  if (!all_sent) log_line(std::string("the destination did not accept the SR: ") + summary.c_str());
  audit(all_sent ? "sent an SR to " + to : "the SR was not accepted by " + to, !all_sent);
  return all_sent;
}

void Node::process(const std::string& series) {
  const fs::path dir = fs::path(o_.spool) / series;
  const fs::path sr = dir / "report.sr";
  std::error_code ec;
  // An SR made before a crash is sent as it is (the same SOP Instance UID): never two different
  // reports of one series, and a resend is a duplicate the PACS recognises.
  if (!fs::exists(sr)) {
    std::vector<std::string> files;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      if (e.path().extension() == ".dcm") files.push_back(e.path().string());
    }
    try {
      const medinfer::SeriesResult r = pipeline_.predict_series(files);
      medinfer::report::ReportOptions ro;
      ro.label_codes = medinfer::report::label_codes(*pipeline_.package());
      const medinfer::report::StructuredReport report = medinfer::report::structured_report(r, files, ro);
      host::write_whole(sr.string(), report.bytes, /*durable=*/true);
      if (!o_.sr_dir.empty()) fs::copy_file(sr, fs::path(o_.sr_dir) / (series + ".sr.dcm"), fs::copy_options::overwrite_existing);
      if (!o_.fhir_dir.empty()) {
        host::write_whole((fs::path(o_.fhir_dir) / (series + ".fhir.json")).string(),
                          medinfer::report::fhir_bundle(r, ro) + "\n");
      }
      std::cout << medinfer::to_json(r) << std::endl;
      log_line("series " + series + ": " + std::to_string(r.slices) + " slices, " + r.label + " p=" +
               std::to_string(r.probability) + " (" + r.tier + ")");
    } catch (const medinfer::Error& e) {
      log_line("series " + series + " failed: " + medinfer::to_string(e.code()) + ": " + e.what());
      std::ofstream(dir / ".failed") << medinfer::to_string(e.code()) << ": " << e.what() << "\n";
      return;
    }
  }
  if (send(sr)) {
    std::ofstream(dir / ".reported") << "sent\n";
    host::sync_path(dir / ".reported", false);
    host::sync_path(dir, true);
    std::lock_guard<std::mutex> lock(m_);
    attempts_.erase(series);
    return;
  }
  std::lock_guard<std::mutex> lock(m_);
  if (++attempts_[series] >= 5) {
    std::ofstream(dir / ".failed") << "the SR could not be sent after 5 attempts\n";
    attempts_.erase(series);
  } else {
    pending_[series] = Clock::now();  // retried after another idle period
  }
}

void Node::work() {
  const auto idle = std::chrono::duration<double>(o_.idle_seconds);
  while (true) {
    std::string next;
    {
      std::lock_guard<std::mutex> lock(m_);
      for (const auto& [series, seen] : pending_) {
        if (Clock::now() - seen >= idle) {
          next = series;
          break;
        }
      }
      if (!next.empty()) pending_.erase(next);
    }
    if (!next.empty()) {
      process(next);  // finished even when a stop arrives meanwhile
      continue;
    }
    if (g_stop) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

OFCondition StoreSCP::handleIncomingCommand(T_DIMSE_Message* msg, const DcmPresentationContextInfo& info) {
  if (msg->CommandField == DIMSE_C_ECHO_RQ) return handleECHORequest(msg->msg.CEchoRQ, info.presentationContextID);
  if (msg->CommandField != DIMSE_C_STORE_RQ) return DcmSCP::handleIncomingCommand(msg, info);
  T_DIMSE_C_StoreRQ& rq = msg->msg.CStoreRQ;
  char name[64];
  static std::atomic<unsigned long> counter{0};
  std::snprintf(name, sizeof name, ".incoming.%d.%lu", getpid(), counter++);
  const fs::path tmp = fs::path(spool_) / name;
  OFCondition c = receiveSTORERequest(rq, info.presentationContextID, OFString(tmp.c_str()));
  Uint16 status = STATUS_STORE_Refused_OutOfResources;
  std::string series;
  if (c.good()) status = node_.accept(tmp, series);
  if (!series.empty()) series_.insert(series);
  (status == STATUS_Success ? received_ : refused_)++;
  return sendSTOREResponse(info.presentationContextID, rq, status);
}

void StoreSCP::notifyAssociationTermination() {
  if (received_ + refused_ > 0) {
    node_.audit("received " + std::to_string(received_) + " instance(s) from " + getPeerAETitle().c_str() +
                    (refused_ ? ", refused " + std::to_string(refused_) : std::string()),
                refused_ > 0);
  }
  if (on_release_ && !aborted_) node_.complete(series_);
  series_.clear();
  aborted_ = false;
  received_ = refused_ = 0;
  DcmSCP::notifyAssociationTermination();
}

std::optional<Destination> parse_destination(const std::string& s) {
  if (s.empty()) return std::nullopt;
  const std::size_t at = s.find('@'), colon = s.rfind(':');
  if (at == std::string::npos || colon == std::string::npos || colon < at || at == 0 || at > 16) {
    throw CLI::ValidationError("--destination", "expected AET@HOST:PORT, not '" + s + "'");
  }
  Destination d;
  d.aet = s.substr(0, at);
  d.host = s.substr(at + 1, colon - at - 1);
  int port = 0;
  try {
    port = std::stoi(s.substr(colon + 1));
  } catch (const std::exception&) {
  }
  if (port < 1 || port > 65535 || d.host.empty()) throw CLI::ValidationError("--destination", "expected AET@HOST:PORT, not '" + s + "'");
  d.port = static_cast<Uint16>(port);
  return d;
}

// Options from the settings (file, MEDINFER_NODE_* environment, command line); errors name the key.
Options options_of(const std::map<std::string, host::Setting>& settings) {
  Options o;
  for (const auto& [key, v] : settings) {
    if (key == "model") o.model = host::setting_text(key, v);
    else if (key == "aet") o.aet = host::setting_text(key, v);
    else if (key == "port") o.port = static_cast<int>(host::setting_integer(key, v, 1, 65535));
    else if (key == "allow_aet") {
      std::string list;
      if (v.value.is_array()) {
        for (const auto& x : v.value) {
          if (!x.is_string()) host::bad_setting(v.where, key, "expected AE titles");
          list += x.get<std::string>() + ",";
        }
      } else {
        list = host::setting_text(key, v);
      }
      for (std::size_t start = 0; start < list.size();) {
        const std::size_t comma = std::min(list.find(',', start), list.size());
        const std::string aet = list.substr(start, comma - start);
        if (aet.size() > 16) host::bad_setting(v.where, key, "'" + aet + "' is longer than an AE title (16)");
        if (!aet.empty()) o.allow.push_back(aet);
        start = comma + 1;
      }
    } else if (key == "spool") o.spool = host::setting_text(key, v);
    else if (key == "destination") o.destination = host::setting_text(key, v);
    else if (key == "series_idle_seconds") o.idle_seconds = host::setting_number(key, v, 0.1, 86400);
    else if (key == "sr_dir") o.sr_dir = host::setting_text(key, v);
    else if (key == "fhir_dir") o.fhir_dir = host::setting_text(key, v);
    else if (key == "audit_log") o.audit_log = host::setting_text(key, v);
    else if (key == "audit_key") o.audit_key = host::setting_text(key, v);
    else if (key == "trigger") {
      const std::string t = host::setting_text(key, v);
      if (t != "idle" && t != "release") host::bad_setting(v.where, key, "expected idle or release, not '" + t + "'");
      o.on_release = t == "release";
    }
  }
  if (o.model.empty()) host::bad_setting("configuration", "model", "required (--model DIR, \"model\" or $MEDINFER_NODE_MODEL)");
  if (o.spool.empty()) host::bad_setting("configuration", "spool", "required (--spool DIR)");
  if (o.allow.empty()) host::bad_setting("configuration", "allow_aet", "required: the calling AE titles accepted");
  if (o.aet.empty() || o.aet.size() > 16) host::bad_setting("configuration", "aet", "1..16 characters");
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"medinfer-dicom-node: a DICOM C-STORE node that predicts each series it receives and sends its DICOM SR on"};
  std::string config_file;
  std::map<std::string, std::string> overrides;
  bool check = false;
  auto opt = [&](const char* flag, const char* key, const char* help) {
    app.add_option_function<std::string>(flag, [&overrides, key](const std::string& v) { overrides[key] = v; }, help);
  };
  app.add_option("--config", config_file, "a JSON file of settings (keys as the options' names with _; docs/dicom-node.md)");
  opt("--model", "model", "the model package directory");
  opt("--aet", "aet", "this node's AE title (default MEDINFER)");
  opt("--port", "port", "the port to listen on (default 11112)");
  opt("--allow-aet", "allow_aet", "calling AE titles accepted (comma-separated); any other is rejected at association");
  opt("--spool", "spool", "where received instances are written (durably) until their series is reported");
  opt("--destination", "destination", "AET@HOST:PORT the SR of each series is sent to by C-STORE");
  opt("--series-idle-seconds", "series_idle_seconds", "a series is predicted once no instance arrived for this long (default 10)");
  opt("--trigger", "trigger", "when a series is complete: idle (no instance for --series-idle-seconds; default) or "
                              "release (also when the association that sent it is released: a study sent in one "
                              "association is predicted at once)");
  opt("--sr-dir", "sr_dir", "also write each SR into DIR as SERIES_UID.sr.dcm");
  opt("--fhir-dir", "fhir_dir", "also write each series' FHIR R4 Bundle into DIR as SERIES_UID.fhir.json");
  opt("--audit-log", "audit_log", "append one audit record per prediction and transfer to FILE");
  opt("--audit-key", "audit_key", "make the audit log an HMAC chain under KEYFILE (default $MEDINFER_AUDIT_KEY)");
  app.add_flag("--check-config", check, "validate the configuration, print it and exit");
  app.footer("Environment: MEDINFER_NODE_<KEY> overrides the config file (MEDINFER_NODE_PORT, ...); the command line "
             "overrides both. Prints 'ready AET PORT' on stdout once listening; each series result as a JSON line. "
             "Exit status: 0 after SIGTERM/SIGINT (the series in flight finished) or a valid --check-config, 1 the "
             "model, audit log or port could not be opened, 2 usage or configuration error.");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  Options o;
  std::optional<Destination> dest;
  try {
    o = options_of(host::merge_settings(config_file, "MEDINFER_NODE_",
                                        {"model", "aet", "port", "allow_aet", "spool", "destination", "series_idle_seconds",
                                         "sr_dir", "fhir_dir", "audit_log", "audit_key", "trigger"},
                                        host::environment_of(environ), overrides));
    dest = parse_destination(o.destination);
  } catch (const std::invalid_argument& e) {
    std::cerr << "medinfer-dicom-node: configuration: " << e.what() << "\n";
    return 2;
  } catch (const CLI::ValidationError& e) {
    std::cerr << "medinfer-dicom-node: configuration: " << e.what() << "\n";
    return 2;
  }
  if (check) {
    nlohmann::ordered_json j{{"model", o.model}, {"aet", o.aet}, {"port", o.port}, {"allow_aet", o.allow},
                             {"spool", o.spool}, {"destination", o.destination}, {"series_idle_seconds", o.idle_seconds},
                             {"sr_dir", o.sr_dir}, {"fhir_dir", o.fhir_dir}, {"audit_log", o.audit_log},
                             {"audit_chained", !o.audit_key.empty()}, {"trigger", o.on_release ? "release" : "idle"}};
    std::cout << j.dump() << std::endl;
    return 0;
  }
  std::error_code ec;
  fs::create_directories(o.spool, ec);
  if (!o.sr_dir.empty()) fs::create_directories(o.sr_dir, ec);
  if (!o.fhir_dir.empty()) fs::create_directories(o.fhir_dir, ec);
  medinfer::audit::OpenedLog log;
  std::optional<medinfer::Pipeline> pipeline;
  try {
    medinfer::PipelineOptions options;
    options.actor.application_id = "medinfer-dicom-node";
    if (!o.audit_log.empty()) {
      medinfer::audit::LogRequest request;
      request.path = o.audit_log;
      request.key_file = o.audit_key;
      log = medinfer::audit::open_log(request);
      options.audit_sink = log.sink;
      options.pseudonym_key = log.pseudonym_key;
    }
    pipeline.emplace(medinfer::Pipeline::open(o.model, options));
  } catch (const medinfer::Error& e) {
    std::cerr << "medinfer-dicom-node: " << medinfer::to_string(e.code()) << ": " << e.what() << "\n";
    return 1;
  }
  struct sigaction sa {};
  sa.sa_handler = on_stop;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);

  Node node(o, dest, std::move(*pipeline));
  node.resume();
  StoreSCP scp(node, o);
  scp.setAETitle(o.aet.c_str());
  scp.setPort(static_cast<Uint16>(o.port));
  scp.setConnectionBlockingMode(DUL_NOBLOCK);
  scp.setConnectionTimeout(1);  // the accept loop looks at the stop flag every second
  scp.setACSETimeout(30);
  scp.setDIMSETimeout(60);
  OFList<OFString> syntaxes;
  for (const char* ts : {UID_LittleEndianExplicitTransferSyntax, UID_LittleEndianImplicitTransferSyntax,
                         UID_BigEndianExplicitTransferSyntax, UID_DeflatedExplicitVRLittleEndianTransferSyntax,
                         UID_JPEGProcess1TransferSyntax, UID_JPEGProcess14SV1TransferSyntax,
                         UID_JPEGLSLosslessTransferSyntax, UID_JPEG2000LosslessOnlyTransferSyntax,
                         UID_JPEG2000TransferSyntax, UID_RLELosslessTransferSyntax}) {
    syntaxes.push_back(ts);
  }
  scp.addPresentationContext(UID_VerificationSOPClass, syntaxes);
  for (int i = 0; i < numberOfDcmAllStorageSOPClassUIDs; ++i) scp.addPresentationContext(dcmAllStorageSOPClassUIDs[i], syntaxes);
  OFCondition c = scp.openListenPort();
  if (c.bad()) {
    std::cerr << "medinfer-dicom-node: cannot listen on port " << o.port << ": " << c.text() << "\n";
    return 1;
  }
  std::thread worker([&node] { node.work(); });
  std::cout << "ready " << o.aet << " " << o.port << std::endl;
  c = scp.acceptAssociations();
  g_stop = true;  // the listener ended (stop requested, or a fatal network error)
  log_line("stopping: finishing the series in flight");
  worker.join();
  if (log.chain) {
    try {
      log.chain->close();
    } catch (const medinfer::Error& e) {
      log_line(std::string("audit log: ") + e.what());
    }
  }
  log_line("stopped");
  return 0;
}
