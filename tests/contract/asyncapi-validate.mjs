// Validates an AsyncAPI document the way `asyncapi validate` does: @asyncapi/parser, the library
// that CLI validates with, with its default rules (the schema of the document's AsyncAPI version,
// then the governance rules). The CLI itself is not used: its current releases need Node 24, and
// the last one for Node 20 installs some 1,500 packages (1.5 GB) for this one command.
//
//   node asyncapi-validate.mjs FILE     exits 1 when the document has an error or a warning
// (`asyncapi validate --fail-severity=warn`): as with the OpenAPI lint, no known problems are kept.
import { readFile } from "node:fs/promises";
import { Parser, DiagnosticSeverity } from "@asyncapi/parser";

const file = process.argv[2];
if (!file) {
  console.error("usage: node asyncapi-validate.mjs FILE");
  process.exit(2);
}

const names = {
  [DiagnosticSeverity.Error]: "error",
  [DiagnosticSeverity.Warning]: "warning",
  [DiagnosticSeverity.Information]: "information",
  [DiagnosticSeverity.Hint]: "hint",
};
const text = await readFile(file, "utf8");
const diagnostics = await new Parser().validate(text, { source: file });
const counts = { error: 0, warning: 0, information: 0, hint: 0 };
for (const d of diagnostics) {
  const severity = names[d.severity];
  counts[severity] += 1;
  const where = d.path.length ? d.path.join(".") : "(document)";
  console.log(`${severity.padEnd(11)} ${d.code}  ${where}  ${d.message}`);
}
console.log(
  `${file}: ${counts.error} errors, ${counts.warning} warnings, ${counts.information} info, ${counts.hint} hints`,
);
process.exit(counts.error + counts.warning > 0 ? 1 : 0);
