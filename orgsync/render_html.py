"""A plan as one self-contained HTML page: a change report an admin attaches to a ticket.

Summary (counts by kind, held records, warnings, safety thresholds), filters (kind,
department, key: typing hides the rows that do not match) and one table per kind.
Everything is inline — the CSS, the script, no font, image or request to anywhere —
so the file opens anywhere, offline, as it was made. Written operation by operation.
"""

from __future__ import annotations

from html import escape
from typing import TextIO

from orgsync.plan_view import View
from orgsync.takeover import summary_lines

_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"PingFang SC","Microsoft YaHei",sans-serif;
margin:2em;color:#1f2329}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}h3{font-size:1em;margin:1.2em 0 .3em}
table{border-collapse:collapse;width:100%}td,th{border:1px solid #dee0e3;padding:3px 6px;
text-align:left;vertical-align:top}th{background:#f5f6f7}
.over{color:#d83931;font-weight:bold}.held{color:#d83931}.warn{color:#8f6200}
.filters{position:sticky;top:0;background:#fff;padding:.6em 0;border-bottom:1px solid #dee0e3}
.filters label{margin-right:1.2em}code{font-size:.95em}
"""

# Rows carry their kind, key and department path; a filter hides the rows that do not
# match, and a kind's section when none of its rows is left.
_SCRIPT = """
function applyFilters(){
  var kind=document.getElementById('f-kind').value;
  var dept=document.getElementById('f-department').value.trim();
  var key=document.getElementById('f-key').value.trim();
  var shown=0;
  document.querySelectorAll('section.kind').forEach(function(sec){
    var left=0;
    sec.querySelectorAll('tr.op').forEach(function(tr){
      var inDept=!dept||tr.dataset.deptkeys.split(' ').indexOf(dept)>=0||
        tr.dataset.depts.split('\\n').some(function(p){
          return p===dept||p.indexOf(dept+'/')===0;});
      var ok=(!kind||tr.dataset.kind===kind)&&inDept&&(!key||tr.dataset.key===key);
      tr.hidden=!ok; if(ok){left++;}
    });
    sec.hidden=left===0; shown+=left;
  });
  document.getElementById('shown').textContent=shown;
}
document.querySelectorAll('.filters select,.filters input').forEach(function(el){
  el.addEventListener('input',applyFilters);el.addEventListener('change',applyFilters);});
"""


def write_html(view: View, out: TextIO) -> None:
    """Write ``view``'s plan to ``out`` as one HTML page (see the module)."""
    plan = view.plan
    w = out.write
    total = len(plan.operations)
    w('<!DOCTYPE html>\n<html lang="zh"><head><meta charset="utf-8">'
      f"<title>orgsync plan {escape(plan.plan_id)}</title><style>{_STYLE}</style></head>\n"
      f"<body>\n<h1>orgsync plan <code>{escape(plan.plan_id)}</code></h1>\n")
    if plan.takeover is not None:
        w("<ul>" + "".join(f"<li>{escape(line)}</li>" for line in summary_lines(plan.takeover))
          + "</ul>\n")
    w('<h2>Summary</h2>\n<table id="summary"><tr><th>operation</th><th>count</th></tr>\n')
    for kind, n in plan.summary().items():
        w(f'<tr data-kind="{escape(kind)}"><td>{escape(kind)}</td><td class="count">{n}</td>'
          "</tr>\n")
    w(f'<tr><th>total</th><th id="total">{total}</th></tr></table>\n')
    if plan.empty:
        w("<p>No changes. Feishu matches the source.</p>\n")
    held, warnings = plan.held(), plan.warnings()
    for title, cls, issues in ((f"Held back ({len(held)}): left as they are in Feishu",
                                "held", held), (f"Warnings ({len(warnings)})", "warn", warnings)):
        if issues:
            w(f'<h2 class="{cls}">{escape(title)}</h2>\n<ul id="{cls}">'
              + "".join(f"<li>{escape(str(i))}</li>" for i in issues) + "</ul>\n")
    if plan.guards:
        w('<h2>Safety thresholds</h2>\n<ul id="thresholds">' + "".join(
            f'<li class="{"over" if g.over else "ok"}">{"OVER: " if g.over else ""}'
            f"{escape(g.reading())}</li>" for g in plan.guards) + "</ul>\n")
    if plan.notes:
        w('<h2>Notes</h2>\n<ul id="notes">'
          + "".join(f"<li>{escape(n)}</li>" for n in plan.notes) + "</ul>\n")
    if not plan.empty and not view.filters.summary:
        _operations(view, out)
    w(f"<script>{_SCRIPT}</script>\n</body></html>\n")


def _operations(view: View, out: TextIO) -> None:
    w = out.write
    kinds = list(view.counts())
    w('<h2>Operations</h2>\n<div class="filters">'
      '<label>kind <select id="f-kind"><option value="">all</option>'
      + "".join(f'<option value="{escape(k)}">{escape(k)}</option>' for k in kinds)
      + '</select></label><label>department <input id="f-department" '
      'placeholder="研发中心/平台部 or D049"></label>'
      '<label>key <input id="f-key" placeholder="E0042"></label>'
      f'showing <span id="shown">-</span> of {len(view.plan.operations)}</div>\n')
    shown = 0
    for kind, n, groups in view.groups():
        w(f'<section class="kind" data-kind="{escape(kind.value)}"><h3>{escape(kind.value)} '
          f"({n})</h3>\n<table><tr><th>department</th><th>key</th><th>name</th>"
          "<th>changes</th><th>reason</th></tr>\n")
        for dept, ops in groups:
            where = view.names.path(dept) if dept else "top level"
            for op in ops:
                depts = view.departments_of(op)
                paths = "\n".join(sorted(view.names.path(d) for d in depts))
                name = view.names.path(op.key) if op.entity == "department" else op.label
                w(f'<tr class="op" data-kind="{escape(kind.value)}" data-key="{escape(op.key)}" '
                  f'data-depts="{escape(paths)}" data-deptkeys="{escape(" ".join(sorted(depts)))}">'
                  f"<td>{escape(where)}</td><td>{escape(op.key)}</td><td>{escape(name)}</td>"
                  f"<td>{'<br>'.join(escape(c) for c in view.changes(op))}</td>"
                  f"<td>{escape(op.reason)}</td></tr>\n")
                shown += 1
        w("</table></section>\n")
    w(f"<script>document.getElementById('shown').textContent={shown};</script>\n")
