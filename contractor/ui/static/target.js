// A foundation's and a structure's page: fields (secrets never shown), interfaces,
// addresses, configuration with provenance (configExplain), dependencies and impact, jobs,
// and the jobs an operator may start on it.

import { ERROR_FIELDS, gql, result } from "./api.js";
import { action, badge, fields, h, heading, isSecretKey, json, link, scrub, section, table, when } from "./dom.js";
import { jobTable } from "./dashboard.js";
import { LEASE_FIELDS, leaseTable, machineTable, machinesOf } from "./discovery.js";

const DEPENDENCY = "id link state builtAt createScriptName destroyScriptName structure { id hostname } dependency { id } foundation { locator state } scriptStructure { id hostname }";

const FOUNDATION = `query ($locator: String!) {
  foundation(locator: $locator) {
    id locator type state locatedAt builtAt created updated idMap typeFields classList
    site { name } blueprint { name scripts { role script { name } } }
    interfaces { name physicalLocation mac isProvisioning linkName network { name } pxe { name } ${LEASE_FIELDS} }
    structure { id hostname state }
    dependency { id link state structure { id hostname } dependency { id } }
    configExplain
  }
  impact(of: { foundation: $locator }) { kind id name state path }
}`;

const STRUCTURE = `query ($id: Int!) {
  structure(id: $id) {
    id hostname state configUuid configValues builtAt created updated
    site { name } blueprint { name scripts { role script { name } } }
    foundation {
      locator type state idMap
      interfaces { name mac ${LEASE_FIELDS} }
      dependency { ${DEPENDENCY} }
    }
    dependencies { ${DEPENDENCY} }
    addresses { interfaceName aliasIndex isPrimary ipAddress offset addressBlock { id name cidr } }
    interfaces { name network { name } }
    complex { name state }
    configExplain
  }
  impact(of: { structure: $id }) { kind id name state path }
}`;

// the target's own newest jobs, finished or not (one bounded query, not the site's jobs)
const JOBS = `query ($f: String, $s: Int) {
  jobs(foundation: $f, structure: $s, finished: true, first: 50) { id state scriptName target targetKind progress message }
}`;

const START = {
  create: `mutation ($f: String, $s: Int) { doCreate(foundation: $f, structure: $s) { ... on Job { id } ${ERROR_FIELDS} } }`,
  destroy: `mutation ($f: String, $s: Int) { doDestroy(foundation: $f, structure: $s) { ... on Job { id } ${ERROR_FIELDS} } }`,
  utility: `mutation ($n: String!, $f: String, $s: Int) { doJob(name: $n, foundation: $f, structure: $s) { ... on Job { id } ${ERROR_FIELDS} } }`,
};

/** The configuration, each key with the layer that set it and those that changed it. */
export function provenance(explained) {
  const keys = Object.entries(explained?.keys || {});
  return table(
    "configuration with provenance",
    [
      ["Key", ([key]) => h("code", {}, key)],
      ["Value", ([key, item]) => (isSecretKey(key) ? h("em", {}, "secret: not shown") : h("code", {}, JSON.stringify(scrub(item.value))))],
      ["Set by", ([, item]) => item.set_by || "—"],
      [
        "Then",
        ([, item]) =>
          item.changes?.length
            ? item.changes.map((change) => `${change.op} by ${change.layer}`).join("; ")
            : "—",
      ],
    ],
    keys,
    "no configuration",
  );
}

function dependencyText(d) {
  const on = d.structure ? link(`#/structure/${d.structure.id}`, `structure ${d.structure.hostname}`) : `dependency #${d.dependency?.id}`;
  return [`dependency #${d.id} (${d.link}) on `, on, " ", badge(d.state)];
}

/** A structure's dependency records: what waits for it, and what runs scripts on it. */
function dependencyTable(structureId, rows) {
  return table(
    "dependency records naming this structure",
    [
      ["Record", (d) => `#${d.id} (${d.link})`],
      ["Role", (d) => (d.structure?.id === structureId ? "waits for it" : "runs its scripts on it")],
      [
        "Waiting",
        (d) =>
          d.foundation
            ? [link(`#/foundation/${encodeURIComponent(d.foundation.locator)}`, `foundation ${d.foundation.locator}`), " ", badge(d.foundation.state)]
            : "no foundation (a chain)",
      ],
      ["On", (d) => (d.structure ? link(`#/structure/${d.structure.id}`, d.structure.hostname) : `dependency #${d.dependency?.id}`)],
      ["Scripts", (d) => [d.createScriptName || "create", " / ", d.destroyScriptName || "destroy", d.scriptStructure ? ` on ${d.scriptStructure.hostname}` : ""]],
      ["State", (d) => badge(d.state)],
    ],
    rows,
    "no dependency record names it",
  );
}

/** What the boot path knows of a foundation: leases of its interfaces, discovered machines. */
async function bootSections(foundation) {
  const machines = await machinesOf(foundation);
  return [
    section("DHCP leases", leaseTable(foundation.interfaces)),
    section(
      "Discovered hardware",
      machineTable("discovered machines of this foundation", machines, "no discovered machine booted from its MACs or reported its serial"),
      foundation.idMap ? [h("h3", {}, "Its hardware identity (as located)"), json(scrub(foundation.idMap))] : null,
    ),
  ];
}

function impactTable(rows) {
  return table(
    "what depends on it",
    [
      ["Kind", (row) => row.kind.toLowerCase()],
      [
        "Name",
        (row) =>
          row.kind === "STRUCTURE"
            ? link(`#/structure/${row.id}`, row.name)
            : row.kind === "FOUNDATION"
              ? link(`#/foundation/${encodeURIComponent(row.name)}`, row.name)
              : row.name,
      ],
      ["State", (row) => badge(row.state)],
      ["Through", (row) => row.path.join(" → ")],
    ],
    rows,
    "nothing depends on it",
  );
}

/** A target's page: its name and state, the jobs to start, `sections`, then its jobs. */
async function targetPage(context, kind, name, variables, target, sections) {
  const label = `${kind} ${name}`;
  const mine = (await gql(JOBS, variables)).jobs;
  const busy = mine.some((job) => ["WAITING", "QUEUED", "PAUSED", "ERROR"].includes(job.state));
  return h(
    "div",
    {},
    heading(`${kind[0].toUpperCase()}${kind.slice(1)} ${name} `, badge(target.state)),
    starters(context, kind, name, variables, target.state, target.blueprint.scripts, busy),
    sections,
    section("Jobs", jobTable(`jobs of ${label}`, mine, "no job yet")),
  );
}

/** The buttons of the jobs an operator may start here; none for a reader. */
function starters(context, kind, name, variables, state, scripts, busy) {
  if (!context.can("operator")) return null;
  const go = (answer) => {
    location.hash = `#/job/${answer.id}`;
  };
  const start = (query, extra = {}) => async () =>
    result(Object.values(await gql(query, { ...variables, ...extra }))[0]);
  const buttons = [];
  const script = (role) => scripts.find((link) => link.role === role)?.script.name || role;
  if (busy) return h("p", { class: "hint" }, "A job is running on it: follow it below.");
  if (state !== "BUILT") {
    buttons.push(
      action("Create", `Create ${kind} ${name}?`, `This starts the create job of ${kind} ${name}: the blueprint's script "${script("create")}" runs until the ${kind} is built.`, start(START.create), go),
    );
  } else {
    buttons.push(
      action("Destroy", `Destroy ${kind} ${name}?`, `This starts the destroy job of ${kind} ${name}: the script "${script("destroy")}" runs and the ${kind} returns to planned (what depends on it is listed under Impact).`, start(START.destroy), go),
    );
    for (const link of scripts.filter((item) => !["create", "destroy"].includes(item.role))) {
      buttons.push(
        action(`Run ${link.role}`, `Run ${link.role} on ${name}?`, `This starts the utility job "${link.role}" (script "${link.script.name}") on ${kind} ${name}; its state does not change.`, start(START.utility, { n: link.role }), go),
      );
    }
  }
  return h("div", { class: "actions", role: "group", "aria-label": "jobs to start" }, buttons);
}

export async function foundation(context) {
  const locator = context.args[0];
  const data = await gql(FOUNDATION, { locator });
  const f = data.foundation;
  if (!f) throw new Error(`there is no foundation "${locator}"`);
  return targetPage(context, "foundation", f.locator, { f: f.locator }, f, [
    section(
      "Fields",
      fields([
        ["Type", f.type],
        ["Site", f.site.name],
        ["Blueprint", f.blueprint.name],
        ["Structure", f.structure ? link(`#/structure/${f.structure.id}`, f.structure.hostname) : null],
        ["Classes", f.classList.join(", ") || null],
        ["Waits for", f.dependency ? dependencyText(f.dependency) : null],
        ["Located", when(f.locatedAt)],
        ["Built", when(f.builtAt)],
        ["Created", when(f.created)],
        ["Updated", when(f.updated)],
      ]),
      h("h3", {}, "Type fields (secrets not shown)"),
      json(scrub(f.typeFields)),
    ),
    section(
      "Interfaces",
      table(
        "interfaces",
        [
          ["Name", (i) => i.name],
          ["Physical location", (i) => i.physicalLocation],
          ["MAC", (i) => i.mac || "—"],
          ["Provisioning", (i) => (i.isProvisioning ? "yes" : "no")],
          ["Network", (i) => i.network?.name || "—"],
          ["Boots next", (i) => i.pxe?.name || "—"],
        ],
        f.interfaces,
        "no interface",
      ),
    ),
    await bootSections(f),
    section("Configuration", provenance(f.configExplain)),
    section("Impact", impactTable(data.impact)),
  ]);
}

export async function structure(context) {
  const id = Number(context.args[0]);
  const data = await gql(STRUCTURE, { id });
  const s = data.structure;
  if (!s) throw new Error(`there is no structure ${context.args[0]}`);
  return targetPage(context, "structure", s.hostname, { s: s.id }, s, [
    section(
      "Fields",
      fields([
        ["Site", s.site.name],
        ["Blueprint", s.blueprint.name],
        ["Foundation", link(`#/foundation/${encodeURIComponent(s.foundation.locator)}`, `${s.foundation.locator} (${s.foundation.type}, ${s.foundation.state.toLowerCase()})`)],
        ["Complex", s.complex ? `${s.complex.name} (${s.complex.state.toLowerCase()})` : null],
        ["Config UUID", h("code", {}, s.configUuid)],
        ["Built", when(s.builtAt)],
        ["Created", when(s.created)],
        ["Updated", when(s.updated)],
      ]),
      h("h3", {}, "Its own config values"),
      json(scrub(s.configValues)),
    ),
    section(
      "Addresses",
      table(
        "addresses",
        [
          ["Interface", (a) => `${a.interfaceName}${a.aliasIndex ? `:${a.aliasIndex}` : ""}`],
          ["IP address", (a) => a.ipAddress || "—"],
          ["Primary", (a) => (a.isPrimary ? "yes" : "no")],
          ["Block", (a) => (a.addressBlock ? link(`#/block/${a.addressBlock.id}`, `${a.addressBlock.name} ${a.addressBlock.cidr}`) : "—")],
          ["Offset", (a) => a.offset ?? "—"],
        ],
        s.addresses,
        "no address",
      ),
    ),
    section(
      "Interfaces",
      table("interfaces", [["Name", (i) => i.name], ["Network", (i) => i.network?.name || "—"]], s.interfaces, "no interface of its own"),
    ),
    await bootSections(s.foundation),
    section("Configuration", provenance(s.configExplain)),
    section(
      "Dependencies",
      fields([
        ["Its foundation", [link(`#/foundation/${encodeURIComponent(s.foundation.locator)}`, s.foundation.locator), " ", badge(s.foundation.state)]],
        ["Its foundation waits for", s.foundation.dependency ? dependencyText(s.foundation.dependency) : "nothing"],
        ["Its complex", s.complex ? [s.complex.name, " ", badge(s.complex.state)] : null],
      ]),
      h("h3", {}, "Dependency records naming it"),
      dependencyTable(s.id, s.dependencies),
    ),
    section("Impact", impactTable(data.impact)),
  ]);
}
