#!/usr/bin/env bash
# The quickstart: starts the pinned MinIO on 127.0.0.1 with a sample tree
# shaped like the seed's bucket (ExtData/…, blended-tropomi/…,
# blended-boundary-conditions/…) and runs the main job: `ferry s3 sync` up to
# S3 and back down, with progress, then a no-op re-sync and a listing.
# Everything lives under .tools/demo/; MinIO stops when the demo ends.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
ferry="$root/.tools/bin/ferry"
minio="$root/.tools/bin/minio"
demo="$root/.tools/demo"
bucket=dzhang-imi-gchp-test
rm -rf "$demo/minio" "$demo/fsx"
mkdir -p "$demo/minio" "$demo/sample"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 9000)
export AWS_ACCESS_KEY_ID=ferrydemo AWS_SECRET_ACCESS_KEY=ferrydemo-secret AWS_REGION=us-east-1
export AWS_ENDPOINT_URL_S3="http://127.0.0.1:$port" AWS_EC2_METADATA_DISABLED=true
MINIO_ROOT_USER=$AWS_ACCESS_KEY_ID MINIO_ROOT_PASSWORD=$AWS_SECRET_ACCESS_KEY MINIO_BROWSER=off \
  "$minio" server --quiet --address "127.0.0.1:$port" "$demo/minio" >"$demo/minio.log" 2>&1 &
minio_pid=$!
trap 'kill $minio_pid 2>/dev/null; wait $minio_pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "$AWS_ENDPOINT_URL_S3/minio/health/ready" >/dev/null && break; sleep 0.1; done

# A sample tree shaped like GEOS-Chem input data (made once, reused).
if [ ! -f "$demo/sample/.done" ]; then
  echo "demo: writing a sample tree to $demo/sample"
  for d in ExtData/HEMCO/CEDS/v2024-06/2019 ExtData/HEMCO/MEGAN/v2021-12 ExtData/CHEM_INPUTS/FAST_JX/v2024-05 \
           ExtData/GEOS_0.5x0.625/MERRA2/2019/01 blended-tropomi/2019/01 blended-boundary-conditions/v2024-06; do
    mkdir -p "$demo/sample/$d"
    for i in $(seq -w 1 12); do head -c $((4096 * 10#$i)) /dev/urandom >"$demo/sample/$d/file_$i.nc4"; done
  done
  head -c $((48 << 20)) /dev/urandom >"$demo/sample/ExtData/GEOS_0.5x0.625/MERRA2/2019/01/MERRA2.20190101.A3dyn.05x0625.nc4"
  head -c $((24 << 20)) /dev/urandom >"$demo/sample/blended-tropomi/2019/01/tropomi_blended_20190101.nc"
  touch "$demo/sample/.done"
fi

run() { echo "+ ferry $*"; "$ferry" "$@"; }
run s3 mb "s3://$bucket"
echo; echo "== upload: the sample tree to s3://$bucket/"
run s3 sync "$demo/sample" "s3://$bucket/" --exclude '.done'
echo; echo "== download: s3://$bucket/ExtData to a local 'fsx' directory"
run s3 sync "s3://$bucket/ExtData" "$demo/fsx/ExtData"
echo; echo "== no-op re-sync: nothing changed, nothing copied (only the listing is sent)"
run s3 sync "s3://$bucket/ExtData" "$demo/fsx/ExtData"
echo; echo "== listing"
run s3 ls "s3://$bucket/"
run s3 ls "s3://$bucket/" --recursive --summarize --human-readable | tail -3
echo; echo "demo: done. Files are in $demo/fsx; MinIO (stopped now) kept its data in $demo/minio."
