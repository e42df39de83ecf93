/**
 * The little XML the ASC MHL needs, without a dependency: escaping for the writer, and a strict
 * parser into a plain element tree for the reader. It rejects DOCTYPEs (no entity expansion from
 * a file a stranger wrote), resolves namespace prefixes (the spec says any prefix must work) and
 * keeps text and child order. Mixed content (free metadata) is kept as text + children.
 */
import { MhlError } from "./errors.ts";

/** One parsed element: local name, namespace URI, attributes by local name, children, direct text. */
export interface XmlElement {
  name: string;
  ns: string;
  attrs: Record<string, string>;
  children: XmlElement[];
  text: string;
}

const ESC: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" };

/** Text or attribute value escaped for XML (quotes too, so one function serves both). */
export function escapeXml(s: string): string {
  // Most values (hashes, dates, plain names) need nothing: test before replacing.
  return NEEDS_ESCAPE.test(s) ? s.replace(/[&<>"]/g, (c) => ESC[c] as string) : s;
}

const NEEDS_ESCAPE = /[&<>"]/;

const NAMED: Record<string, string> = { lt: "<", gt: ">", amp: "&", quot: '"', apos: "'" };

function unescape(s: string, where: () => string): string {
  if (!s.includes("&")) return s;
  return s.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-zA-Z]+);|&/g, (m, ref: string | undefined) => {
    if (ref === undefined) throw malformed(`a bare "&" ${where()}`);
    if (ref.startsWith("#x")) return String.fromCodePoint(Number.parseInt(ref.slice(2), 16));
    if (ref.startsWith("#")) return String.fromCodePoint(Number.parseInt(ref.slice(1), 10));
    const v = NAMED[ref];
    if (v === undefined) throw malformed(`unknown entity ${m} ${where()}`);
    return v;
  });
}

function malformed(what: string): MhlError {
  return new MhlError("MALFORMED", `not well-formed XML: ${what}`);
}

const NAME = "[A-Za-z_][\\w.\\-]*(?::[A-Za-z_][\\w.\\-]*)?";
const ATTR_RE = new RegExp(`\\s+(${NAME})\\s*=\\s*(?:"([^"]*)"|'([^']*)')`, "y");
const OPEN_RE = new RegExp(`<(${NAME})`, "y");
const CLOSE_RE = new RegExp(`</(${NAME})\\s*>`, "y");

interface Frame {
  el: XmlElement;
  qname: string;
  scope: Map<string, string>;
}

/** Parses a whole document and returns its root element; throws MALFORMED with the position on any error. */
export function parseXml(text: string): XmlElement {
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  const stack: Frame[] = [];
  let root: XmlElement | null = null;
  const at = () => `at line ${text.slice(0, i).split("\n").length}`;
  const skip = (end: string, what: string) => {
    const j = text.indexOf(end, i);
    if (j < 0) throw malformed(`unterminated ${what} ${at()}`);
    i = j + end.length;
  };
  while (i < text.length) {
    const lt = text.indexOf("<", i);
    const chunk = text.slice(i, lt < 0 ? text.length : lt);
    const top = stack.at(-1);
    if (top !== undefined) top.el.text += unescape(chunk, at);
    else if (chunk.trim() !== "") throw malformed(`text outside the root element ${at()}`);
    if (lt < 0) break;
    i = lt;
    if (text.startsWith("<?", i)) skip("?>", "processing instruction");
    else if (text.startsWith("<!--", i)) skip("-->", "comment");
    else if (text.startsWith("<![CDATA[", i)) {
      const j = text.indexOf("]]>", i);
      if (j < 0 || top === undefined) throw malformed(`misplaced or unterminated CDATA ${at()}`);
      top.el.text += text.slice(i + 9, j);
      i = j + 3;
    } else if (text.startsWith("<!", i)) throw malformed(`DOCTYPE and other declarations are not accepted ${at()}`);
    else if (text.startsWith("</", i)) {
      CLOSE_RE.lastIndex = i;
      const m = CLOSE_RE.exec(text);
      const frame = stack.pop();
      if (m === null || frame === undefined || m[1] !== frame.qname) throw malformed(`unexpected closing tag ${at()}`);
      i = CLOSE_RE.lastIndex;
    } else {
      if (root !== null && stack.length === 0) throw malformed(`a second root element ${at()}`);
      const frame = openTag(text, i, top?.scope ?? new Map([["xml", "http://www.w3.org/XML/1998/namespace"]]), at);
      i = frame.end;
      if (top !== undefined) top.el.children.push(frame.frame.el);
      else root = frame.frame.el;
      if (!frame.selfClosing) stack.push(frame.frame);
    }
  }
  if (stack.length > 0) throw malformed(`<${stack.at(-1)?.qname}> is not closed`);
  if (root === null) throw malformed("no root element");
  return root;
}

function openTag(text: string, start: number, parentScope: Map<string, string>, at: () => string): { frame: Frame; end: number; selfClosing: boolean } {
  OPEN_RE.lastIndex = start;
  const m = OPEN_RE.exec(text);
  if (m === null) throw malformed(`bad tag ${at()}`);
  const qname = m[1] as string;
  let i = OPEN_RE.lastIndex;
  const raw: [string, string][] = [];
  for (;;) {
    ATTR_RE.lastIndex = i;
    const a = ATTR_RE.exec(text);
    if (a === null) break;
    raw.push([a[1] as string, unescape(a[2] ?? a[3] ?? "", at)]);
    i = ATTR_RE.lastIndex;
  }
  while (/\s/.test(text[i] ?? "")) i++;
  const selfClosing = text.startsWith("/>", i);
  if (!selfClosing && text[i] !== ">") throw malformed(`bad attribute or unterminated tag <${qname}> ${at()}`);
  let scope = parentScope;
  for (const [k, v] of raw) {
    if (k === "xmlns" || k.startsWith("xmlns:")) {
      if (scope === parentScope) scope = new Map(parentScope);
      scope.set(k === "xmlns" ? "" : k.slice(6), v);
    }
  }
  const [prefix, local] = qname.includes(":") ? (qname.split(":", 2) as [string, string]) : ["", qname];
  const ns = scope.get(prefix);
  if (ns === undefined && prefix !== "") throw malformed(`undeclared prefix ${prefix}: ${at()}`);
  const attrs: Record<string, string> = {};
  for (const [k, v] of raw) if (k !== "xmlns" && !k.startsWith("xmlns:")) attrs[k.includes(":") ? (k.split(":")[1] as string) : k] = v;
  return { frame: { el: { name: local, ns: ns ?? "", attrs, children: [], text: "" }, qname, scope }, end: i + (selfClosing ? 2 : 1), selfClosing };
}

/** The direct children of `el` named `name` (local name); none when `el` is absent. */
export function childrenNamed(el: XmlElement | undefined, name: string): XmlElement[] {
  return el === undefined ? [] : el.children.filter((c) => c.name === name);
}

/** The one child named `name`, or undefined. */
export function childNamed(el: XmlElement, name: string): XmlElement | undefined {
  return el.children.find((c) => c.name === name);
}
