# The FSx guide's "Verify DRA exists" command with `aws` replaced by `ferry`.
ferry fsx describe-data-repository-associations \
--filters Name=file-system-id,Values="$FSX_ID" \
--query "Associations[*].{Path:FileSystemPath,S3:DataRepositoryPath,State:Lifecycle}"
