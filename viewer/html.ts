// Markup that is safe by construction: every value interpolated into `markup` is escaped unless
// it is already `Html` built by this module. Stored bytes can only ever become text.

const SAFE: unique symbol = Symbol("safe-html");

/** A fragment of markup built by {@linkcode html} (its values escaped). */
export interface Html {
  /** The markup. */
  readonly [SAFE]: string;
}

/** What `markup` accepts as a value. */
export type HtmlValue = Html | string | number | boolean | null | undefined | readonly HtmlValue[];

const ENTITIES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};

/**
 * Escapes text for an element's content or a quoted attribute value.
 *
 * @param text Any text.
 * @returns The text with `& < > " '` escaped.
 */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ENTITIES[c]);
}

function render(value: HtmlValue): string {
  if (value === null || value === undefined || value === false) return "";
  if (Array.isArray(value)) return value.map(render).join("");
  if (typeof value === "object") return (value as Html)[SAFE];
  return escapeHtml(String(value));
}

/**
 * Builds markup from a template: the literal parts are markup, the values are escaped text
 * (arrays are joined; `Html` values are inserted as they are; `null`, `undefined` and `false`
 * are nothing).
 *
 * @returns The fragment.
 */
export function markup(strings: TemplateStringsArray, ...values: HtmlValue[]): Html {
  let out = strings[0];
  for (let i = 0; i < values.length; i++) out += render(values[i]) + strings[i + 1];
  return { [SAFE]: out };
}

/**
 * The markup of a fragment, as a string.
 *
 * @param fragment The fragment.
 * @returns Its markup.
 */
export function toMarkup(fragment: Html): string {
  return fragment[SAFE];
}

/**
 * Wraps markup this viewer owns (its style sheet and script, constants in its source) as
 * `Html`. Never for anything read from storage or from a request.
 *
 * @param constant Markup written in this viewer's source.
 * @returns The fragment.
 */
export function ownMarkup(constant: string): Html {
  return { [SAFE]: constant };
}
