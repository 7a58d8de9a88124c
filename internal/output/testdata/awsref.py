# Reference: run awscli's own formatters over the *.input.json files and
# compare with the Go golden files. Needs the aws CLI's Python (awscli,
# jmespath). Usage: python3 awsref.py  (prints mismatches; exit 1 on any)
import io, json, sys
import jmespath
from awscli import text
from awscli.table import MultiTable, Styler
from awscli.formatter import TableFormatter

CASES = {
    "dra-describe": ("DescribeDataRepositoryAssociations", None),
    "dra-query": ("DescribeDataRepositoryAssociations", "Associations[*].{Path:FileSystemPath,S3:DataRepositoryPath,State:Lifecycle}"),
    "dra-create": ("CreateDataRepositoryAssociation", None),
    "task-describe": ("DescribeDataRepositoryTasks", None),
    "task-query": ("DescribeDataRepositoryTasks", "DataRepositoryTasks[].[TaskId, Lifecycle, Status.SucceededCount, length(Paths || `[]`)]"),
    "ids-query": ("DescribeDataRepositoryAssociations", "Associations[].AssociationId"),
    "scalar-query": ("DescribeDataRepositoryAssociations", "Associations[0].ImportedFileChunkSize"),
}

class Args:  # what TableFormatter reads
    color = "off"
    query = None

bad = 0
for name, (title, query) in CASES.items():
    data = json.load(open(name + ".input.json"))
    if query:
        data = jmespath.search(query, data)
    out = {}
    s = io.StringIO()
    if data != {}:
        json.dump(data, s, indent=4, ensure_ascii=False); s.write("\n")
    out["json"] = s.getvalue()
    s = io.StringIO(); text.format_text(data, s); out["text"] = s.getvalue()
    f = TableFormatter(Args())
    f.table = MultiTable(initial_section=False, column_separator="|", styler=Styler())
    f.table._terminal_width = 80
    s = io.StringIO()
    if f._build_table(title, data):
        f.table.render(s)
    out["table"] = s.getvalue()
    for fmt, want in out.items():
        got = open(f"{name}.{fmt}.golden").read()
        if got != want:
            bad += 1
            print(f"MISMATCH {name}.{fmt}\n--- awscli\n{want}--- ferry\n{got}")
sys.exit(1 if bad else 0)
