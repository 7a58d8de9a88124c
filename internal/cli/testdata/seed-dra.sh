# The aws fsx commands of the FSx data-transfer guide ("Through CLI"
# and "Verify DRA exists") with `aws` replaced by `ferry`, nothing else
# changed. The test runs this with FSX_ID set and ferry first on PATH.
set -e
# Create two Data Repository Associations (DRAs).
# Note: DRA file system paths cannot overlap (e.g., /ExtData and /ExtData/subdir).
# DRAs are supported on FSx for Lustre 2.12/2.15 file systems (excluding scratch_1).
# DRA 1: Import-only (recommended for static input data like ExtData)
ferry fsx create-data-repository-association \
--file-system-id "$FSX_ID" \
--file-system-path "/ExtData" \
--data-repository-path "s3://dzhang-imi-gchp-test/ExtData" \
--batch-import-meta-data-on-create \
--s3 '{
"AutoImportPolicy": {"Events": ["NEW","CHANGED","DELETED"]}
}' \
--tags Key=Name,Value=dra-extdata \
--client-request-token dra-extdata-001
# DRA 2: Import-only (or add AutoExportPolicy if you truly want FSx -> S3 sync)
ferry fsx create-data-repository-association \
--file-system-id "$FSX_ID" \
--file-system-path "/blended-tropomi" \
--data-repository-path "s3://dzhang-imi-gchp-test/blended-tropomi" \
--batch-import-meta-data-on-create \
--s3 '{
"AutoImportPolicy": {"Events": ["NEW","CHANGED","DELETED"]}
}' \
--tags Key=Name,Value=dra-blended-tropomi \
--client-request-token dra-tropomi-001
# DRA 3: Import-only (or add AutoExportPolicy if you truly want FSx -> S3 sync)
ferry fsx create-data-repository-association \
--file-system-id "$FSX_ID" \
--file-system-path "/blended-boundary-conditions" \
--data-repository-path "s3://dzhang-imi-gchp-test/blended-boundary-conditions" \
--batch-import-meta-data-on-create \
--s3 '{
"AutoImportPolicy": {"Events": ["NEW","CHANGED","DELETED"]}
}' \
--tags Key=Name,Value=dra-blended-bc \
--client-request-token dra-bc-001
