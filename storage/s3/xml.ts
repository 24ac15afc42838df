// XML for S3 answers: small, flat documents that a few regexes read without a DOM.

/**
 * The inner text of every `<tag>` element, in document order (not decoded).
 *
 * @param xml The document.
 * @param tag The element name.
 * @returns The elements' inner XML.
 */
export function xmlAll(xml: string, tag: string): string[] {
  const pattern = new RegExp(`<${tag}(?:\\s[^>]*)?>([\\s\\S]*?)</${tag}>`, "g");
  return [...xml.matchAll(pattern)].map((match) => match[1]);
}

/**
 * The decoded text of the first `<tag>` element, `""` for `<tag/>`, `undefined` when absent.
 *
 * @param xml The document.
 * @param tag The element name.
 * @returns The element's text.
 */
export function xmlText(xml: string, tag: string): string | undefined {
  const pattern = new RegExp(`<${tag}(?:\\s[^>]*)?>([\\s\\S]*?)</${tag}>|<${tag}\\s*/>`);
  const match = pattern.exec(xml);
  if (match === null) return undefined;
  return decodeXml(match[1] ?? "");
}

function decodeXml(text: string): string {
  return text
    .replace(/^<!\[CDATA\[([\s\S]*)\]\]>$/, "$1")
    .replace(/&(#x[0-9a-fA-F]+|#[0-9]+|amp|lt|gt|quot|apos);/g, (_, entity: string) => {
      switch (entity) {
        case "amp":
          return "&";
        case "lt":
          return "<";
        case "gt":
          return ">";
        case "quot":
          return '"';
        case "apos":
          return "'";
        default:
          return String.fromCodePoint(
            entity[1] === "x" ? parseInt(entity.slice(2), 16) : parseInt(entity.slice(1), 10),
          );
      }
    });
}

const XML_ESCAPES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&apos;",
};

/**
 * Escapes text for an XML element body.
 *
 * @param text Raw text.
 * @returns The escaped text.
 */
export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => XML_ESCAPES[c]);
}

/**
 * Reads `<Error><Code>…</Code><Message>…</Message></Error>` when the body is one.
 *
 * @param body A response body.
 * @returns The error's code and message, or `undefined` when the body is no error document.
 */
export function parseErrorDocument(
  body: Uint8Array,
): { code?: string; message?: string } | undefined {
  if (body.byteLength === 0 || body.byteLength > 64 * 1024) return undefined;
  const xml = new TextDecoder().decode(body);
  if (!/^\s*(<\?xml[^>]*\?>\s*)?<Error[\s>]/.test(xml)) return undefined;
  return { code: xmlText(xml, "Code"), message: xmlText(xml, "Message") };
}
