// Foundations and structures as filterable, paged tables (the filters live in the URL).

import { gql } from "./api.js";
import { badge, h, hashOf, heading, link, pageSize, pager, table } from "./dom.js";

const CHOICES = `query ($kind: BluePrintKind!) {
  sites(first: 1000) { nodes { name } }
  blueprints(kind: $kind, first: 1000) { nodes { name } }
  addressBlocks(first: 1000) { nodes { id name cidr } }
}`;

const FOUNDATIONS = `query ($filter: FoundationFilter, $after: String, $first: Int) {
  foundations(filter: $filter, first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor }
    nodes { id locator type state site { name } blueprint { name } structure { id hostname } }
  }
}`;

const STRUCTURES = `query ($filter: StructureFilter, $after: String, $first: Int) {
  structures(filter: $filter, first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor }
    nodes {
      id hostname state site { name } blueprint { name }
      foundation { locator type } addresses { ipAddress isPrimary }
    }
  }
}`;

const BY_ADDRESS = `query ($ip: String!) {
  address(ip: $ip) { ... on Address { structure { id } } }
}`;

function glob(text) {
  if (!text) return null;
  return /[*?[]/.test(text) ? text : `*${text}*`;
}

function scope(name, below) {
  return name ? { name, includeDescendants: below !== "no" } : null;
}

function select(id, label, value, options, none = "any") {
  return h(
    "div",
    { class: "field" },
    h("label", { for: id }, label),
    h(
      "select",
      { id, name: id.replace(/^f-/, "") },
      none ? h("option", { value: "" }, none) : null,
      options.map(([optionValue, text]) =>
        h("option", { value: optionValue, selected: String(optionValue) === value }, text),
      ),
    ),
  );
}

function input(id, label, value, hint) {
  return h(
    "div",
    { class: "field" },
    h("label", { for: id }, label),
    h("input", { id, name: id.replace(/^f-/, ""), value: value || "", placeholder: hint, type: "search" }),
  );
}

function sizes(params) {
  const choices = [25, 50, 100, 200].map((n) => [String(n), `${n}`]);
  const chosen = String(pageSize(params));
  if (!choices.some(([value]) => value === chosen)) choices.unshift([chosen, chosen]);
  return select("f-size", "Rows per page", chosen, choices, null);
}

function filterForm(route, params, controls) {
  const form = h(
    "form",
    { class: "filters", role: "search", "aria-label": `filter ${route}` },
    controls,
    h("div", { class: "buttons" }, h("button", { type: "submit" }, "Filter"), link(`#/${route}`, "Clear")),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const chosen = Object.fromEntries(new FormData(form));
    location.hash = hashOf(route, chosen);
  });
  return form;
}

function address(structure) {
  const primary = structure.addresses.find((item) => item.isPrimary) || structure.addresses[0];
  return primary?.ipAddress || "—";
}

// The site and blueprint filters both lists have, from the kind's choices.
function placeFilters(params, choices) {
  return [
    select("f-site", "Site (and below)", params.site, choices.sites.nodes.map((s) => [s.name, s.name])),
    select("f-blueprint", "Blueprint", params.blueprint, choices.blueprints.nodes.map((b) => [b.name, b.name])),
  ];
}

// A list page: its filter form, one page of `data` as a table (`empty` when there is
// nothing), and the pager.
function listing(route, title, form, columns, empty, data, params, page) {
  return h(
    "div",
    {},
    heading(title),
    form,
    table(route, columns, data.nodes, empty),
    pager(route, params, data.pageInfo, page, data.nodes.length, data.totalCount),
  );
}

export async function foundations({ params }) {
  const choices = await gql(CHOICES, { kind: "FOUNDATION" });
  const filter = {
    site: scope(params.site, params.below),
    blueprint: scope(params.blueprint),
    type: params.type ? [params.type] : null,
    state: params.state ? [params.state] : null,
    locator: glob(params.q),
  };
  const page = Number(params.page || 1);
  const data = (await gql(FOUNDATIONS, { filter, after: params.after || null, first: pageSize(params) })).foundations;
  const form = filterForm("foundations", params, [
    ...placeFilters(params, choices),
    input("f-type", "Type", params.type, "e.g. ipmi"),
    select("f-state", "State", params.state, ["PLANNED", "LOCATED", "BUILT"].map((s) => [s, s.toLowerCase()])),
    input("f-q", "Locator", params.q, "text or glob, e.g. rack1-*"),
    sizes(params),
  ]);
  const columns = [
    ["Locator", (f) => link(`#/foundation/${encodeURIComponent(f.locator)}`, f.locator)],
    ["State", (f) => badge(f.state)],
    ["Site", (f) => f.site.name],
    ["Blueprint", (f) => f.blueprint.name],
    ["Type", (f) => f.type],
    ["Structure", (f) => (f.structure ? link(`#/structure/${f.structure.id}`, f.structure.hostname) : "—")],
  ];
  return listing("foundations", "Foundations", form, columns, "no foundation matches", data, params, page);
}

export async function structures({ params }) {
  const choices = await gql(CHOICES, { kind: "STRUCTURE" });
  let data;
  const page = Number(params.page || 1);
  if (params.ip) {
    // one address names at most one structure: show it, through the same table
    const found = (await gql(BY_ADDRESS, { ip: params.ip })).address?.structure;
    data = { nodes: [], totalCount: 0, pageInfo: { hasNextPage: false } };
    if (found) {
      const hit = await gql(
        `query ($id: Int!) { structure(id: $id) { id hostname state site { name } blueprint { name }
           foundation { locator type } addresses { ipAddress isPrimary } } }`,
        { id: found.id },
      );
      data = { nodes: [hit.structure], totalCount: 1, pageInfo: { hasNextPage: false } };
    }
  } else {
    const filter = {
      site: scope(params.site, params.below),
      blueprint: scope(params.blueprint),
      state: params.state ? [params.state] : null,
      hostname: glob(params.q),
      foundationType: params.type ? [params.type] : null,
      addressBlock: params.block ? Number(params.block) : null,
    };
    data = (await gql(STRUCTURES, { filter, after: params.after || null, first: pageSize(params) })).structures;
  }
  const form = filterForm("structures", params, [
    ...placeFilters(params, choices),
    input("f-type", "Foundation type", params.type, "e.g. simulated"),
    select("f-state", "State", params.state, ["PLANNED", "BUILT"].map((s) => [s, s.toLowerCase()])),
    select("f-block", "Address block", params.block, choices.addressBlocks.nodes.map((b) => [String(b.id), `${b.name} ${b.cidr}`])),
    input("f-ip", "IP address", params.ip, "e.g. 10.0.0.5"),
    input("f-q", "Hostname", params.q, "text or glob, e.g. web*"),
    sizes(params),
  ]);
  const columns = [
    ["Hostname", (s) => link(`#/structure/${s.id}`, s.hostname)],
    ["State", (s) => badge(s.state)],
    ["Site", (s) => s.site.name],
    ["Blueprint", (s) => s.blueprint.name],
    ["Address", address],
    ["Foundation", (s) => link(`#/foundation/${encodeURIComponent(s.foundation.locator)}`, `${s.foundation.locator} (${s.foundation.type})`)],
  ];
  return listing("structures", "Structures", form, columns, "no structure matches", data, params, page);
}
