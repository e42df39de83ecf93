/** The XML subset parser: namespaces by any prefix, entities, CDATA, and refusals. */
import { expect, test } from "bun:test";
import { parseManifest } from "./manifest_reader.ts";
import { escapeXml, parseXml } from "./xml.ts";

test("elements, attributes, entities, CDATA and namespaces with any prefix", () => {
  const x = parseXml(`<?xml version="1.0"?>\n<!-- c --><m:a xmlns:m="urn:x" k='v&amp;1'><m:b>1 &lt; 2 &#x41;&#66;<![CDATA[<raw>]]></m:b><c xmlns="urn:y"/></m:a>`);
  expect(x).toEqual({
    name: "a",
    ns: "urn:x",
    attrs: { k: "v&1" },
    text: "",
    children: [
      { name: "b", ns: "urn:x", attrs: {}, children: [], text: "1 < 2 AB<raw>" },
      { name: "c", ns: "urn:y", attrs: {}, children: [], text: "" },
    ],
  });
  expect(parseXml(`<r t="${escapeXml('a"<&>')}">${escapeXml("<&>")}</r>`)).toMatchObject({ attrs: { t: 'a"<&>' }, text: "<&>" });
});

test("malformed documents are refused with MALFORMED", () => {
  for (const bad of ["", "<a>", "<a></b>", "<a/><b/>", "text<a/>", "<a>&bogus;</a>", "<a>&</a>", '<!DOCTYPE a [<!ENTITY e "x">]><a/>', "<p:a/>", "<a b=c/>"]) {
    expect(() => parseXml(bad)).toThrow(expect.objectContaining({ code: "MALFORMED" }));
  }
});

test("a manifest with a namespace prefix reads like one without", () => {
  const doc = `<?xml version="1.0" encoding="UTF-8"?>
<mhl:hashlist version="2.0" xmlns:mhl="urn:ASC:MHL:v2.0">
  <mhl:creatorinfo><mhl:creationdate>2020-01-16T09:15:00Z</mhl:creationdate><mhl:hostname>h</mhl:hostname><mhl:tool>t</mhl:tool></mhl:creatorinfo>
  <mhl:processinfo><mhl:process>transfer</mhl:process></mhl:processinfo>
  <mhl:hashes><mhl:hash><mhl:path size="5">Clips/A.mov</mhl:path><mhl:xxh64 action="original">0EA03B369A463D9D</mhl:xxh64><mhl:metadata><x>free</x></mhl:metadata></mhl:hash>
  <mhl:directoryhash><mhl:path>Clips/</mhl:path><mhl:content><mhl:xxh64>4c226b42e27d7af3</mhl:xxh64></mhl:content><mhl:structure><mhl:xxh64>906faa843d591a9f</mhl:xxh64></mhl:structure></mhl:directoryhash></mhl:hashes>
</mhl:hashlist>`;
  const m = parseManifest(doc, "prefixed.mhl");
  expect(m.hashes).toEqual([
    { kind: "file", path: "Clips/A.mov", size: 5, hashes: [{ format: "xxh64", value: "0ea03b369a463d9d", action: "original" }] },
    { kind: "directory", path: "Clips", content: [{ format: "xxh64", value: "4c226b42e27d7af3" }], structure: [{ format: "xxh64", value: "906faa843d591a9f" }] },
  ]);
  expect(() => parseManifest(doc.replaceAll("urn:ASC:MHL:v2.0", "urn:other"), "other.mhl")).toThrow("other.mhl is not a valid ASC MHL manifest: the root element is <hashlist>");
  expect(() => parseManifest(doc.replace('action="original"', 'action="maybe"'), "a.mhl")).toThrow('action "maybe"');
  expect(() => parseManifest(doc.replace("Clips/A.mov", "../A.mov"), "p.mhl")).toThrow('has a ".." segment');
  expect(() => parseManifest(doc.replace('size="5"', 'size="five"'), "s.mhl")).toThrow('the size of "Clips/A.mov" is "five", not a byte count');
});
