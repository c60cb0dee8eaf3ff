#!/usr/bin/env bash
# The one list of Debian packages Quire needs to build, test and run.
# Idempotent: installs only what is missing; runs `apt-get update` only when it must install.
# Works as root or through sudo.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config git ca-certificates curl
  libboost1.81-dev libboost-url1.81-dev libboost-program-options1.81-dev
  libvips-dev libvips-tools
  libcurl4-openssl-dev libssl-dev libtiff-dev libjpeg-dev
  libseccomp-dev  # the decode sandbox's system-call filter (src/media/)
  libopenjp2-tools  # opj_compress makes the JPEG 2000 test files; opj_decompress in bench/jp2.sh
  nlohmann-json3-dev
  libsqlite3-dev sqlite3
  libpq-dev postgresql-15 haproxy
  libspdlog-dev libfmt-dev
  libcli11-dev
  libgtest-dev libgmock-dev googletest
  libbenchmark-dev
  clang libclang-rt-14-dev
  python3
  chromium
  nodejs  # npm packages of the portal (OpenSeadragon) at build time, and the browser tests
  poppler-utils  # pdfinfo / pdftoppm open the named-query PDFs in presentation_test
  qpdf  # encrypts a test PDF in pdf_ingest_test
  prometheus  # promtool checks the /metrics exposition in the tests
  ffmpeg  # ffprobe/ffmpeg transcode audio and video (src/media/av_transcode.cc) and probe them in av_ingest_test
  libfaketime  # clock_step_test steps the wall clock of a live server
  ceph-mon ceph-osd radosgw awscli  # the S3 server of the tests (scripts/s3-test-server.sh) and its client
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

# Debian's nodejs comes without npm (a nodesource nodejs brings its own): ask for it only then.
if ! command -v npm >/dev/null 2>&1 &&
   ! dpkg-query -W -f='${Status}' npm 2>/dev/null | grep -q 'install ok installed'; then
  missing+=(npm)
fi

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi

echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
