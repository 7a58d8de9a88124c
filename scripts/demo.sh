#!/usr/bin/env bash
# The quickstart: starts the pinned MinIO on 127.0.0.1 with a sample tree
# shaped like the FSx guide's bucket (ExtData/…, blended-tropomi/…,
# blended-boundary-conditions/…) and runs the main job: `ferry s3 sync` up to
# S3 and back down, with progress, then a no-op re-sync and a listing. Then
# the second approach: `ferry mount` of a store directory, the FSx guide's three
# data repository associations, and lazy import (ls, hsm state before and
# after a read, a parallel restore, a preload of exactly the files a GEOS-Chem
# dry-run log names with hsm restore --from-dryrun), auto-import (MinIO's webhook target posts
# the bucket's events to the daemon's --events-listen: an object put into the
# bucket appears in the mount), a public prefix (a bucket policy lets anyone
# read public/: listed and linked with --no-sign-request), then the way back: hsm archive and an
# EXPORT_TO_REPOSITORY task write new files to S3, an AutoExportPolicy
# exports a file as it is closed, hsm wait drains, umount says what is
# pending. Everything lives under .tools/demo/;
# the mount and MinIO stop when the demo ends.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
ferry="$root/.tools/bin/ferry"
minio="$root/.tools/bin/minio"
demo="$root/.tools/demo"
bucket=dzhang-imi-gchp-test
mnt="$demo/mnt"
export FERRY_RUNTIME_DIR="$demo/run"
"$ferry" umount "$mnt" >/dev/null 2>&1 || true
rm -rf "$demo/minio" "$demo/fsx" "$demo/store" "$demo/run"
mkdir -p "$demo/minio" "$demo/sample" "$demo/store" "$mnt"

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo "$1"; }
port=$(freeport 9000)
events_port=$(freeport 9010) # the mount's event endpoint (ferry mount --events-listen)
export AWS_ACCESS_KEY_ID=ferrydemo AWS_SECRET_ACCESS_KEY=ferrydemo-secret AWS_REGION=us-east-1
export AWS_ENDPOINT_URL_S3="http://127.0.0.1:$port" AWS_EC2_METADATA_DISABLED=true
# The token MinIO's webhook sends and the mount requires (ferry reads it from
# FERRY_EVENTS_TOKEN, which keeps it out of ps).
FERRY_EVENTS_TOKEN=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
export FERRY_EVENTS_TOKEN
# MinIO's webhook target FERRY posts the bucket's events to the mount; it may
# start before the mount listens (events are sent once it does).
MINIO_ROOT_USER=$AWS_ACCESS_KEY_ID MINIO_ROOT_PASSWORD=$AWS_SECRET_ACCESS_KEY MINIO_BROWSER=off \
  MINIO_NOTIFY_WEBHOOK_ENABLE_FERRY=on MINIO_NOTIFY_WEBHOOK_ENDPOINT_FERRY="http://127.0.0.1:$events_port/events" \
  MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_FERRY="$FERRY_EVENTS_TOKEN" \
  "$minio" server --quiet --address "127.0.0.1:$port" "$demo/minio" >"$demo/minio.log" 2>&1 &
minio_pid=$!
trap '"$ferry" umount "$mnt" >/dev/null 2>&1 || true; kill $minio_pid 2>/dev/null; wait $minio_pid 2>/dev/null || true' EXIT
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
# A public prefix (anyone may list and read it, like GEOS-Chem's own bucket).
if [ ! -d "$demo/sample/public" ]; then
  mkdir -p "$demo/sample/public/HEMCO/MACCITY/v2014-07"
  for i in 1 2 3; do head -c $((65536 * i)) /dev/urandom >"$demo/sample/public/HEMCO/MACCITY/v2014-07/MACCity_4x5_$i.nc"; done
fi
# A GEOS-Chem dry-run log (gcclassic --dryrun > log.dryrun) of a run that reads
# some of these files, written on another machine (/home/ubuntu/ExtData/...):
# it goes to the bucket with the run directory, to preload from.
mkdir -p "$demo/sample/rundirs/gc_05x0625_merra2_fullchem"
cp "$root/scripts/demo-dryrun.log" "$demo/sample/rundirs/gc_05x0625_merra2_fullchem/log.dryrun"

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

echo; echo "== mount: a ferry file system over the store directory $demo/store, on $mnt"
cd "$demo"
echo "+ ferry mount --background --events-listen $events_port --store store mnt"
if ! FSX_ID=$("$ferry" mount --background --log-level warn --events-listen "$events_port" --store store mnt); then
  echo "demo: ferry mount needs FUSE (/dev/fuse, and fusermount3 when not root: scripts/tools.sh fuse3); skipping the mount part."
  echo "demo: done. Files are in $demo/fsx; MinIO (stopped now) kept its data in $demo/minio."
  exit 0
fi
echo "$FSX_ID"
export FSX_ID
echo; echo "== the FSx guide's data repository associations (aws fsx ... with ferry in place of aws)"
for p in ExtData blended-tropomi blended-boundary-conditions; do
  run fsx create-data-repository-association --file-system-id "$FSX_ID" \
    --file-system-path "/$p" --data-repository-path "s3://$bucket/$p" \
    --s3 '{"AutoImportPolicy": {"Events": ["NEW","CHANGED","DELETED"]}}' \
    --tags Key=Name,Value="dra-$p" --client-request-token "dra-$p-001" \
    --query 'Association.[AssociationId,FileSystemPath,Lifecycle]' --output text
done
for _ in $(seq 300); do
  left=$("$ferry" fsx describe-data-repository-associations --filters Name=file-system-id,Values="$FSX_ID" \
    --query "length(Associations[?Lifecycle!='AVAILABLE'])" --output text)
  [ "$left" = 0 ] && break
  sleep 0.1
done
run fsx describe-data-repository-associations --filters Name=file-system-id,Values="$FSX_ID" \
  --query "Associations[*].{Path:FileSystemPath,S3:DataRepositoryPath,State:Lifecycle}" --output table
echo; echo "== lazy import: the first ls lists the prefix; no data is copied yet"
f=ExtData/HEMCO/MEGAN/v2021-12/file_07.nc4
echo "+ ls mnt/ExtData/HEMCO/MEGAN/v2021-12"; ls "mnt/ExtData/HEMCO/MEGAN/v2021-12" | sed -n "1,3p;4s/.*/.../p"
run hsm state "mnt/$f"
echo "+ cmp mnt/$f sample/$f   (the read fetches the data)"; cmp "mnt/$f" "sample/$f" && echo "identical"
# The chunks read are marked local just after the read is served.
for _ in $(seq 20); do "$ferry" hsm state "mnt/$f" | grep -q released || break; sleep 0.1; done
run hsm state "mnt/$f"
echo; echo "== auto-import: the bucket sends its events to the mount (MinIO webhook → ferry mount --events-listen)"
# The bucket notification (what mc event add does): creates and deletes go to
# MinIO's webhook target FERRY. Signed by curl (SigV4).
cat >"$demo/notification.xml" <<EOF
<NotificationConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><QueueConfiguration><Id>ferry-demo</Id><Queue>arn:minio:sqs::FERRY:webhook</Queue><Event>s3:ObjectCreated:*</Event><Event>s3:ObjectRemoved:*</Event></QueueConfiguration></NotificationConfiguration>
EOF
echo "+ PutBucketNotificationConfiguration s3://$bucket: s3:ObjectCreated:*, s3:ObjectRemoved:* → arn:minio:sqs::FERRY:webhook"
if curl -sf --aws-sigv4 "aws:amz:$AWS_REGION:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
     -T "$demo/notification.xml" "$AWS_ENDPOINT_URL_S3/$bucket?notification=" >/dev/null; then
  new=ExtData/HEMCO/MEGAN/v2021-12/file_13.nc4
  head -c 50000 /dev/urandom >"$demo/file_13.nc4"
  echo "+ ls mnt/${new%/*} | tail -2"; ls "mnt/${new%/*}" | tail -2
  run s3 cp "$demo/file_13.nc4" "s3://$bucket/$new"
  for _ in $(seq 100); do [ -e "mnt/$new" ] && break; sleep 0.1; done
  echo "+ ls mnt/${new%/*} | tail -2   (the new object is there: its event made it appear)"; ls "mnt/${new%/*}" | tail -2
  run hsm state "mnt/$new"
  run fsx describe-data-repository-associations --filters Name=file-system-id,Values="$FSX_ID" \
    --query "Associations[?FileSystemPath=='/ExtData'].{Path:FileSystemPath,Sources:join(',',FerryStatus.AutoImport.Sources),EventsApplied:FerryStatus.AutoImport.EventsApplied,Conflicts:FerryStatus.AutoImport.Conflicts}" --output table
else
  echo "demo: curl could not put the bucket notification (curl 7.75 or later signs S3 requests); skipping auto-import."
fi

echo; echo "== a public prefix: read without credentials (--no-sign-request), as GEOS-Chem's input bucket"
# The bucket policy (what mc anonymous set download does for the prefix):
# anyone may list public/ and get the objects under it. Signed by curl (SigV4).
cat >"$demo/policy.json" <<EOF
{"Version":"2012-10-17","Statement":[
 {"Effect":"Allow","Principal":{"AWS":["*"]},"Action":["s3:GetObject"],"Resource":["arn:aws:s3:::$bucket/public/*"]},
 {"Effect":"Allow","Principal":{"AWS":["*"]},"Action":["s3:ListBucket"],"Resource":["arn:aws:s3:::$bucket"],"Condition":{"StringLike":{"s3:prefix":["public/*"]}}}]}
EOF
echo "+ PutBucketPolicy s3://$bucket: anyone may list and read public/"
if curl -sf --aws-sigv4 "aws:amz:$AWS_REGION:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
     -T "$demo/policy.json" "$AWS_ENDPOINT_URL_S3/$bucket?policy=" >/dev/null; then
  nocreds() { echo "+ (no credentials) ferry $*"; env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY "$ferry" "$@"; }
  nocreds s3 ls --no-sign-request "s3://$bucket/public/" --recursive
  echo "+ (no credentials) ferry s3 ls s3://$bucket/public/   (without --no-sign-request: refused at once)"
  env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY "$ferry" s3 ls "s3://$bucket/public/" 2>&1 | head -2 || true
  run fsx create-data-repository-association --file-system-id "$FSX_ID" \
    --file-system-path /public --data-repository-path "s3://$bucket/public/" --no-sign-request \
    --query 'Association.[AssociationId,FileSystemPath,Lifecycle]' --output text
  for _ in $(seq 300); do
    state=$("$ferry" fsx describe-data-repository-associations --filters Name=file-system-id,Values="$FSX_ID" \
      --query "Associations[?FileSystemPath=='/public'].Lifecycle | [0]" --output text)
    [ "$state" = AVAILABLE ] && break
    sleep 0.1
  done
  p=public/HEMCO/MACCITY/v2014-07
  echo "+ ls mnt/$p"; ls "mnt/$p"
  echo "+ cmp mnt/$p/MACCity_4x5_2.nc sample/$p/MACCity_4x5_2.nc   (fetched unsigned)"
  cmp "mnt/$p/MACCity_4x5_2.nc" "sample/$p/MACCity_4x5_2.nc" && echo "identical"
else
  echo "demo: curl could not put the bucket policy (curl 7.75 or later signs S3 requests); skipping the public prefix."
fi

echo; echo "== preload exactly what a model run reads: the files its dry run names"
run s3 cp "s3://$bucket/rundirs/gc_05x0625_merra2_fullchem/log.dryrun" log.dryrun
echo "+ grep -m 4 -E ': Opening|FILE NOT FOUND' log.dryrun"; grep -m 4 -E ': Opening|FILE NOT FOUND' log.dryrun
# The log's paths are those of the machine of the dry run; --root maps the part
# before ExtData/ onto the mount. Files already local (file_07, read above) cost nothing.
run hsm restore --from-dryrun log.dryrun --root mnt
run hsm state mnt/ExtData/GEOS_0.5x0.625/MERRA2/2019/01/MERRA2.20190101.A3dyn.05x0625.nc4 mnt/ExtData/GEOS_0.5x0.625/MERRA2/2019/01/file_03.nc4

echo; echo "== preload a whole tree in parallel, then release a file's local data again"
run hsm restore -r "mnt/blended-tropomi"
run hsm state "mnt/blended-tropomi/2019/01/tropomi_blended_20190101.nc"
run hsm release "mnt/blended-tropomi/2019/01/tropomi_blended_20190101.nc"
run hsm state "mnt/blended-tropomi/2019/01/tropomi_blended_20190101.nc"
echo; echo "== export: new files written under the mount go to S3"
mkdir -p mnt/ExtData/output
head -c 300000 /dev/urandom >mnt/ExtData/output/run1.nc
head -c 200000 /dev/urandom >mnt/ExtData/output/run2.nc
run hsm state mnt/ExtData/output/run1.nc
run hsm archive mnt/ExtData/output/run1.nc
run hsm state mnt/ExtData/output/run1.nc
echo "+ ferry fsx create-data-repository-task --type EXPORT_TO_REPOSITORY --file-system-id \$FSX_ID --paths ExtData/output --report Enabled=false"
task=$("$ferry" fsx create-data-repository-task --type EXPORT_TO_REPOSITORY --file-system-id "$FSX_ID" \
  --paths ExtData/output --report Enabled=false --query DataRepositoryTask.TaskId --output text)
echo "$task"
for _ in $(seq 300); do
  state=$("$ferry" fsx describe-data-repository-tasks --task-ids "$task" --query 'DataRepositoryTasks[0].Lifecycle' --output text)
  case $state in SUCCEEDED|FAILED|CANCELED) break ;; esac
  sleep 0.1
done
run fsx describe-data-repository-tasks --task-ids "$task" \
  --query 'DataRepositoryTasks[0].{Lifecycle:Lifecycle,Total:Status.TotalCount,Succeeded:Status.SucceededCount,Failed:Status.FailedCount}' --output table
run hsm state mnt/ExtData/output/run2.nc
run s3 ls "s3://$bucket/ExtData/output/"
echo; echo "== auto-export: with an AutoExportPolicy every file closed under the association goes to S3 by itself"
dra=$("$ferry" fsx describe-data-repository-associations --filters Name=file-system-id,Values="$FSX_ID" \
  --query "Associations[?FileSystemPath=='/ExtData'].AssociationId | [0]" --output text)
run fsx update-data-repository-association --association-id "$dra" \
  --s3 '{"AutoImportPolicy": {"Events": ["NEW","CHANGED","DELETED"]}, "AutoExportPolicy": {"Events": ["NEW","CHANGED","DELETED"]}}' \
  --query 'Association.[AssociationId,Lifecycle]' --output text
for _ in $(seq 300); do
  state=$("$ferry" fsx describe-data-repository-associations --association-ids "$dra" --query 'Associations[0].Lifecycle' --output text)
  [ "$state" = AVAILABLE ] && break
  sleep 0.1
done
head -c 150000 /dev/urandom >mnt/ExtData/output/run3.nc
echo "+ head -c 150000 /dev/urandom >mnt/ExtData/output/run3.nc"
echo; echo "== drain barrier and unmount: hsm wait returns once everything closed so far is exported"
run hsm wait --timeout 60s mnt
run hsm state mnt/ExtData/output/run3.nc
run s3 ls "s3://$bucket/ExtData/output/"
run umount mnt
echo; echo "demo: done. Files are in $demo/fsx and in the store $demo/store (unmounted now); MinIO (stopped now) kept its data in $demo/minio."
