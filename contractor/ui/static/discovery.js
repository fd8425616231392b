// Discovered hardware: machines that booted with no reservation and reported their facts,
// as a filterable, paged table; a machine's facts and problems; and the operators' actions
// (match it to a Foundation by hand, forget it), each confirmed with what will happen.
// The boot path's facts about a Foundation (leases, discovered machines) are here too.

import { ERROR_FIELDS, gql, result } from "./api.js";
import { action, badge, fields, h, hashOf, heading, json, link, pageSize, pager, scrub, section, table, when } from "./dom.js";

const LIST = `query ($site: String, $matched: Boolean, $mac: String, $serial: String, $after: String, $first: Int) {
  sites(first: 1000) { nodes { name } }
  discoveredHardware(site: $site, matched: $matched, mac: $mac, serial: $serial, first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor }
    nodes { id mac serial site matched located problems reports reportedAt }
  }
}`;

const MACHINE = `query ($id: Int!) {
  discoveredMachine(id: $id) { id mac serial site matched located problems reports reportedAt created facts }
}`;

const MATCH = `mutation ($id: Int!, $f: String!) {
  matchDiscoveredHardware(id: $id, foundation: $f) { ... on DiscoveredHardware { id matched located problems } ${ERROR_FIELDS} }
}`;

const FORGET = `mutation ($id: Int!) { forgetDiscoveredHardware(id: $id) { __typename ${ERROR_FIELDS} } }`;

const FOUND = "id mac serial matched located problems reports reportedAt";

function yesNo(value) {
  return value ? "yes" : "no";
}

function status(machine) {
  if (machine.located) return badge("located");
  if (machine.matched) return badge("matched");
  return badge(machine.problems.length ? "unmatched" : "discovered");
}

/** Discovered machines as a table (the list page, and a foundation's page). */
export function machineTable(caption, machines, empty) {
  return table(
    caption,
    [
      ["Machine", (m) => link(`#/discovered/${m.id}`, `#${m.id} ${m.mac}`)],
      ["Serial", (m) => m.serial || "—"],
      ["Status", status],
      ["Foundation", (m) => (m.matched ? link(`#/foundation/${encodeURIComponent(m.matched)}`, m.matched) : "—")],
      ["Problems", (m) => (m.problems.length ? h("span", { class: "error" }, m.problems.length) : "none")],
      ["Reports", (m) => m.reports],
      ["Last report", (m) => when(m.reportedAt)],
    ],
    machines,
    empty,
  );
}

/** The DHCP leases reported for a machine's interfaces. */
export function leaseTable(interfaces) {
  const rows = interfaces.flatMap((i) => i.leases.map((lease) => ({ ...lease, interface: i.name })));
  return table(
    "DHCP leases",
    [
      ["Interface", (l) => l.interface],
      ["MAC", (l) => l.mac],
      ["Address", (l) => l.address],
      ["Host name", (l) => l.hostname || "—"],
      ["State", (l) => badge(l.state)],
      ["From", (l) => when(l.starts)],
      ["Until", (l) => when(l.ends)],
      ["Reported", (l) => when(l.reportedAt)],
    ],
    rows,
    "no lease reported for its interfaces",
  );
}

export const LEASE_FIELDS = "leases { mac address hostname state starts ends reportedAt }";

/**
 * The discovered machines of a Foundation: those that booted from one of its interfaces'
 * MACs, or reported its serial. One query with an alias per MAC (a machine has a few).
 */
export async function machinesOf(foundation) {
  const macs = [...new Set(foundation.interfaces.map((i) => i.mac).filter(Boolean))].slice(0, 16);
  const serial = foundation.idMap?.serial || foundation.locator;
  const parts = macs.map((_, index) => `m${index}: discoveredHardware(mac: $m${index}, first: 10) { nodes { ${FOUND} } }`);
  const declared = macs.map((_, index) => `$m${index}: String!`);
  const query = `query ($serial: String!${declared.length ? ", " : ""}${declared.join(", ")}) {
    s: discoveredHardware(serial: $serial, first: 10) { nodes { ${FOUND} } } ${parts.join(" ")} }`;
  const variables = { serial };
  macs.forEach((mac, index) => {
    variables[`m${index}`] = mac;
  });
  const data = await gql(query, variables);
  const seen = new Map();
  for (const answer of Object.values(data)) for (const machine of answer.nodes) seen.set(machine.id, machine);
  return [...seen.values()].sort((x, y) => x.id - y.id);
}

export async function list({ params }) {
  const page = Number(params.page || 1);
  const matched = params.matched === "yes" ? true : params.matched === "no" ? false : null;
  const data = await gql(LIST, {
    site: params.site || null,
    matched,
    mac: params.mac || null,
    serial: params.serial || null,
    after: params.after || null,
    first: pageSize(params),
  });
  const found = data.discoveredHardware;
  const form = h(
    "form",
    { class: "filters", role: "search", "aria-label": "filter discovered hardware" },
    h(
      "div",
      { class: "field" },
      h("label", { for: "f-site" }, "Site"),
      h(
        "select",
        { id: "f-site", name: "site" },
        h("option", { value: "" }, "any"),
        data.sites.nodes.map((s) => h("option", { value: s.name, selected: s.name === params.site }, s.name)),
      ),
    ),
    h(
      "div",
      { class: "field" },
      h("label", { for: "f-matched" }, "Matched to a foundation"),
      h(
        "select",
        { id: "f-matched", name: "matched" },
        [["", "either"], ["yes", "yes"], ["no", "no"]].map(([value, text]) =>
          h("option", { value, selected: (params.matched || "") === value }, text),
        ),
      ),
    ),
    h(
      "div",
      { class: "field" },
      h("label", { for: "f-mac" }, "MAC"),
      h("input", { id: "f-mac", name: "mac", type: "search", value: params.mac || "", placeholder: "any form" }),
    ),
    h(
      "div",
      { class: "field" },
      h("label", { for: "f-serial" }, "Serial"),
      h("input", { id: "f-serial", name: "serial", type: "search", value: params.serial || "" }),
    ),
    h("div", { class: "buttons" }, h("button", { type: "submit" }, "Filter"), link("#/discovered", "Clear")),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = hashOf("discovered", Object.fromEntries(new FormData(form)));
  });
  return h(
    "div",
    {},
    heading("Discovered hardware"),
    h("p", { class: "hint" }, "Machines that booted with no reservation and reported their hardware (docs/boot.md, Discovery)."),
    form,
    machineTable("discovered machines", found.nodes, "no discovered machine matches"),
    pager("discovered", params, found.pageInfo, page, found.nodes.length, found.totalCount),
  );
}

function factFields(facts) {
  const disks = (facts.disks || []).map((d) => `${d.name} ${(d.size_bytes / 1e9).toFixed(1)} GB`);
  const pci = (facts.pci || []).map((p) => `${p.vendor}:${p.device}`);
  return fields([
    ["Manufacturer", facts.manufacturer || null],
    ["Product", facts.product || null],
    ["Serial", facts.serial || null],
    ["UUID", facts.uuid ? h("code", {}, facts.uuid) : null],
    ["CPUs", facts.cpu_count ?? null],
    ["Memory", facts.memory_mib ? `${facts.memory_mib} MiB` : null],
    ["Disks", disks.join(", ") || null],
    ["PCI devices", pci.join(", ") || null],
    ["MACs", (facts.macs || []).join(", ") || null],
  ]);
}

function matchForm(context, machine) {
  const input = h("input", {
    id: "match-foundation",
    name: "foundation",
    autocomplete: "off",
    placeholder: "a foundation's locator",
    value: machine.matched || "",
  });
  const match = action(
    "Match",
    `Match machine #${machine.id} to a foundation?`,
    () =>
      `Discovered machine #${machine.id} (${machine.mac}) is matched to foundation "${input.value.trim()}" of site ${machine.site}. ` +
      "If that foundation is planned and its blueprint's fingerprint is met, it is located from this report: its hardware identity becomes these facts and the boot MAC is recorded on its provisioning interface; otherwise the problems say why and the foundation is left as it is.",
    async () => result((await gql(MATCH, { id: machine.id, f: input.value.trim() })).matchDiscoveredHardware),
    () => context.refresh(),
  );
  const forget = action(
    "Forget",
    `Forget machine #${machine.id}?`,
    `The record of discovered machine #${machine.id} (${machine.mac}) and its facts are deleted; a foundation it was matched to keeps its state and identity. Its next report is taken as a new machine.`,
    async () => result((await gql(FORGET, { id: machine.id })).forgetDiscoveredHardware),
    () => {
      location.hash = "#/discovered";
    },
  );
  return h(
    "div",
    { class: "actions", role: "group", "aria-label": "discovered machine actions" },
    h("div", { class: "field" }, h("label", { for: "match-foundation" }, "Foundation to match it to"), input),
    match,
    forget,
  );
}

export async function machine(context) {
  const id = Number(context.args[0]);
  const found = (await gql(MACHINE, { id })).discoveredMachine;
  if (!found) throw new Error(`there is no discovered machine ${context.args[0]}`);
  return h(
    "div",
    {},
    heading(`Discovered machine #${found.id} ${found.mac} `, status(found)),
    context.can("operator") ? matchForm(context, found) : null,
    section(
      "Fields",
      fields([
        ["Site", found.site],
        ["Boot MAC", h("code", {}, found.mac)],
        ["Serial", found.serial],
        ["Matched foundation", found.matched ? link(`#/foundation/${encodeURIComponent(found.matched)}`, found.matched) : "none"],
        ["Located from it", yesNo(found.located)],
        ["Reports", found.reports],
        ["First report", when(found.created)],
        ["Last report", when(found.reportedAt)],
      ]),
    ),
    section(
      "Problems",
      found.problems.length
        ? h("ul", { class: "problems" }, found.problems.map((problem) => h("li", {}, problem)))
        : h("p", {}, "No problems."),
    ),
    section("Facts", factFields(found.facts), h("h3", {}, "The report as checked"), json(scrub(found.facts))),
  );
}
