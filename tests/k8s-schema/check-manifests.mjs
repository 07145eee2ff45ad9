// Checks Kubernetes manifests against the API's own types, without a cluster.
//
//   node check-manifests.mjs FILE.yaml...      (run from this directory,
//                                              after `npm ci`)
//
// Every YAML document becomes a TypeScript constant typed with its kind's
// interface: kubernetes-types (generated from the official Kubernetes 1.30
// OpenAPI schema) for built-in kinds, @kubernetes-models/cert-manager
// (generated from cert-manager's CRD schemas) for cert-manager kinds. The
// TypeScript compiler then reports what `kubectl apply --validate=strict`
// would: unknown fields (excess-property checks), wrong types, missing
// required fields. A kind not listed here is an error, not a pass.
// Kustomization files are not API objects and are skipped.
// Exit 0 when every document checks, 1 otherwise.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import YAML from "yaml";

const here = path.dirname(fileURLToPath(import.meta.url));

// apiVersion -> module exporting the types; kind names are the export names.
const builtin = {
  "v1": "kubernetes-types/core/v1",
  "apps/v1": "kubernetes-types/apps/v1",
  "policy/v1": "kubernetes-types/policy/v1",
  "networking.k8s.io/v1": "kubernetes-types/networking/v1",
  "batch/v1": "kubernetes-types/batch/v1",
  "rbac.authorization.k8s.io/v1": "kubernetes-types/rbac/v1",
  "autoscaling/v2": "kubernetes-types/autoscaling/v2",
};
const certManager = {
  "cert-manager.io/v1": "@kubernetes-models/cert-manager/cert-manager.io/v1",
};
const skipped = new Set(["kustomize.config.k8s.io/v1beta1"]);

function typeRef(apiVersion, kind) {
  if (builtin[apiVersion]) return { module: builtin[apiVersion], name: kind };
  if (certManager[apiVersion]) {
    return { module: `${certManager[apiVersion]}/${kind}`, name: `I${kind}` };
  }
  return null;
}

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: node check-manifests.mjs FILE.yaml...");
  process.exit(2);
}

const lines = [];
const where = new Map();  // constant name -> "file: Kind name"
let problems = 0;
let checked = 0;
files.forEach((file, fi) => {
  const docs = YAML.parseAllDocuments(fs.readFileSync(file, "utf8"));
  docs.forEach((doc, di) => {
    if (doc.errors.length) {
      console.log(`${file}: YAML: ${doc.errors[0].message}`);
      problems++;
      return;
    }
    const obj = doc.toJSON();
    if (obj == null) return;
    const label = `${file}: ${obj.kind} ${obj.metadata?.name ?? "(no name)"}`;
    if (skipped.has(obj.apiVersion)) return;
    const ref = typeRef(obj.apiVersion, obj.kind);
    if (!ref) {
      console.log(`${label}: no schema for apiVersion ${obj.apiVersion}`);
      problems++;
      return;
    }
    const name = `doc_${fi}_${di}`;
    where.set(name, label);
    // One document per line (import and constant), so that a diagnostic's
    // line names its document.
    lines.push(`import type { ${ref.name} as T_${name} } from "${ref.module}"; ` +
               `export const ${name}: T_${name} = ${JSON.stringify(obj)};`);
    checked++;
  });
});

const source = path.join(here, ".manifests-under-check.ts");
fs.writeFileSync(source, lines.join("\n") + "\n");
const program = ts.createProgram([source], {
  strict: true, noEmit: true, skipLibCheck: true, module: ts.ModuleKind.ESNext,
  moduleResolution: ts.ModuleResolutionKind.Bundler, target: ts.ScriptTarget.ES2022,
  types: [],
});
const text = fs.readFileSync(source, "utf8");
for (const d of ts.getPreEmitDiagnostics(program)) {
  let label = "(check)";
  if (d.file && d.start !== undefined) {
    const lineStart = text.lastIndexOf("\n", d.start) + 1;
    const m = /export const (doc_\d+_\d+)/.exec(text.slice(lineStart, text.indexOf("\n", d.start)));
    if (m) label = where.get(m[1]);
  }
  console.log(`${label}: ${ts.flattenDiagnosticMessageText(d.messageText, " ")}`);
  problems++;
}
fs.unlinkSync(source);
console.log(`${checked} document(s) checked, ${problems} problem(s)`);
process.exit(problems ? 1 : 0);
