#!/usr/bin/env bash
# Installs what medinfer needs from Debian 12's packages, only when something is missing (so a
# second run costs a few dpkg queries, no network).
#   scripts/install-deps.sh demo   build + run the CLI demo
#   scripts/install-deps.sh test   everything the tests and benchmarks use as well
set -euo pipefail
profile=${1:-test}

demo_pkgs=(cmake g++ make pkg-config
  libtorch-dev libopencv-dev libdcmtk-dev libfmt-dev nlohmann-json3-dev libssl-dev
  libcharls-dev libopenjp2-7-dev zlib1g-dev libcli11-dev
  python3 python3-numpy python3-pydicom)
test_pkgs=(catch2 pybind11-dev python3-dev python3-pytest libbenchmark-dev
  python3-torch python3-scipy python3-sklearn python3-opencv dcmtk libopenjp2-tools libopenjph-dev openjph-tools clang libclang-rt-14-dev
  python3-gdcm python3-pil python3-jsonschema openssl dicom3tools orthanc
  libcpp-httplib-dev prometheus-cpp-dev prometheus nginx wrk curl
  python3-venv python3-pip python3-setuptools python3-wheel python3-mypy python3-distributed python3-tqdm python3-matplotlib)

case "$profile" in
  demo) pkgs=("${demo_pkgs[@]}") ;;
  test) pkgs=("${demo_pkgs[@]}" "${test_pkgs[@]}") ;;
  *) echo "usage: $0 demo|test" >&2; exit 2 ;;
esac

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then missing+=("$p"); fi
done
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi

echo "installing from Debian: ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
# Packages with a daemon (orthanc, which the tests start themselves on loopback) must not start a
# system service while installing: Debian's policy-rc.d hook (exit 101: "action forbidden"), only for
# this install and only when the machine has none of its own.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod 755 "$policy"
  trap '$SUDO rm -f "$policy"' EXIT
fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "installed ${#missing[@]} package(s)"
