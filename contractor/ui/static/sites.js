// The site tree: each site's own config values, which sites below inherit each of them, and
// (for the chosen site) the composed configuration with where every key comes from.

import { gql } from "./api.js";
import { fields, h, hashOf, heading, isSecretKey, link, scrub, section, table } from "./dom.js";
import { provenance } from "./target.js";

const TREE = `{
  sites(first: 1000) { nodes { name description parent { name } configValues zone { name } } }
  structureCounts(groupBy: [SITE]) { site count }
  foundationCounts(groupBy: [SITE]) { site count }
}`;

const SITE = `query ($name: String!) { site(name: $name) { name configExplain } }`;

function descendants(children, name) {
  const found = [];
  const stack = [...(children.get(name) || [])];
  while (stack.length) {
    const site = stack.shift();
    found.push(site);
    stack.push(...(children.get(site.name) || []));
  }
  return found;
}

/** The sites below `name` that get `key` from it: each stops at a site that sets it itself. */
function inheritors(children, name, key) {
  const found = [];
  const stack = [...(children.get(name) || [])];
  while (stack.length) {
    const site = stack.shift();
    if (key in site.configValues) continue;
    found.push(site.name);
    stack.push(...(children.get(site.name) || []));
  }
  return found;
}

export async function render({ params }) {
  const data = await gql(TREE);
  const sites = data.sites.nodes;
  const children = new Map();
  for (const site of sites) {
    const parent = site.parent?.name ?? null;
    if (!children.has(parent)) children.set(parent, []);
    children.get(parent).push(site);
  }
  const count = (groups, name) => groups.find((group) => group.site === name)?.count || 0;
  const branch = (list) =>
    h(
      "ul",
      {},
      list.map((site) =>
        h(
          "li",
          {},
          link(hashOf("sites", { site: site.name }), site.name, site.name === params.site ? " (shown)" : ""),
          h("span", { class: "hint" }, ` ${count(data.foundationCounts, site.name)} foundations, ${count(data.structureCounts, site.name)} structures`),
          children.has(site.name) ? branch(children.get(site.name)) : null,
        ),
      ),
    );
  const chosen = sites.find((site) => site.name === params.site) || null;
  let detail = h("p", { class: "hint" }, "Choose a site to see its configuration and what inherits it.");
  if (chosen) {
    const explained = (await gql(SITE, { name: chosen.name })).site;
    const below = descendants(children, chosen.name);
    const own = Object.entries(chosen.configValues);
    detail = h(
      "div",
      { id: "site-detail" },
      h("h2", {}, `Site ${chosen.name}`),
      fields([
        ["Description", chosen.description || null],
        ["Parent", chosen.parent ? link(hashOf("sites", { site: chosen.parent.name }), chosen.parent.name) : "none (a root)"],
        ["DNS zone", chosen.zone?.name || null],
        ["Sites below", below.length ? below.map((site) => site.name).join(", ") : "none"],
        [
          "Inventory",
          [
            link(hashOf("foundations", { site: chosen.name }), "its foundations"),
            ", ",
            link(hashOf("structures", { site: chosen.name }), "its structures"),
          ],
        ],
      ]),
      section(
        "Config values set here",
        table(
          "config values set on this site",
          [
            ["Key", ([key]) => h("code", {}, key)],
            ["Value", ([key, value]) => (isSecretKey(key) ? h("em", {}, "secret: not shown") : h("code", {}, JSON.stringify(scrub(value))))],
            [
              "Inherited by",
              ([key]) => {
                const heirs = inheritors(children, chosen.name, key);
                return heirs.length ? heirs.join(", ") : "no site below (and everything in this site)";
              },
            ],
          ],
          own,
          "no config value set on this site",
        ),
      ),
      section("Composed configuration", provenance(explained.configExplain)),
    );
  }
  return h(
    "div",
    {},
    heading("Sites"),
    h("div", { class: "split" }, h("nav", { class: "tree", "aria-label": "site tree" }, branch(children.get(null) || [])), detail),
  );
}
