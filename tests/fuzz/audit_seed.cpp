// Writes the audit fuzzer's seeds: a chained log (two runs, a key rotation) under the keys the harness
// verifies with, and its witness file.   audit_seed OUT_DIR
#include <medinfer/audit.hpp>

#include <string>

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  const std::string dir = argv[1];
  medinfer::audit::Keyring keys;
  keys.keys[0] = std::string(32, 'k');
  medinfer::audit::ChainOptions options;
  options.witness = medinfer::audit::witness_file(dir + "/witness.jsonl");
  options.checkpoint_every = 2;
  for (int run = 0; run < 2; ++run) {
    auto sink = medinfer::audit::ChainedFileSink::open(dir + "/chain.jsonl", keys, options);
    medinfer::audit::Record r;
    r.event = medinfer::audit::EventType::kInference;
    r.finding.label = "lesion";
    r.findings.push_back(r.finding);
    for (int i = 0; i < 3; ++i) sink->write(r);
    if (run == 1) sink->rotate_key(1, std::string(32, 'l'));
    sink->write(r);
  }
  return 0;
}
