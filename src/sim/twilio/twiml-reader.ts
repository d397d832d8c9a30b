/**
 * Reads the TwiML documents the product answers with: just enough XML for TwiML (elements,
 * attributes, text, the five entities and numeric references). Anything else is an error, so a
 * broken document fails the test instead of being guessed at.
 */

export interface TwimlNode {
  name: string;
  attrs: Record<string, string>;
  children: TwimlNode[];
  text: string;
}

const TOKEN = /<\?[^?]*\?>|<!--[\s\S]*?-->|<\/([A-Za-z]+)\s*>|<([A-Za-z]+)((?:\s+[A-Za-z:]+="[^"<]*")*)\s*(\/?)>|([^<]+)/g;
const ATTR = /([A-Za-z:]+)="([^"<]*)"/g;

export function readTwiml(xml: string): TwimlNode {
  const root: TwimlNode = { name: '#document', attrs: {}, children: [], text: '' };
  const stack = [root];
  let consumed = 0;
  for (const m of xml.matchAll(TOKEN)) {
    if (m.index !== consumed) throw new Error(`not TwiML: unreadable at ${consumed}`);
    consumed += m[0].length;
    const top = stack[stack.length - 1]!;
    if (m[1] !== undefined) {
      if (top.name !== m[1]) throw new Error(`not TwiML: </${m[1]}> closes <${top.name}>`);
      stack.pop();
    } else if (m[2] !== undefined) {
      const node: TwimlNode = { name: m[2], attrs: {}, children: [], text: '' };
      for (const a of (m[3] ?? '').matchAll(ATTR)) node.attrs[a[1]!] = unescapeXml(a[2]!);
      top.children.push(node);
      if (m[4] !== '/') stack.push(node);
    } else if (m[5] !== undefined) {
      top.text += unescapeXml(m[5]);
    }
  }
  if (consumed !== xml.length || stack.length !== 1) throw new Error('not TwiML: unclosed element');
  const response = root.children[0];
  if (root.children.length !== 1 || response?.name !== 'Response') throw new Error('not TwiML: no single <Response>');
  return response;
}

function unescapeXml(text: string): string {
  if (/&(?!(#x[0-9a-fA-F]+|#[0-9]+|amp|lt|gt|quot|apos);)/.test(text)) throw new Error('not TwiML: a bare & (unescaped)');
  return text.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|amp|lt|gt|quot|apos);/g, (_, ref: string) => {
    if (ref.startsWith('#x')) return String.fromCodePoint(parseInt(ref.slice(2), 16));
    if (ref.startsWith('#')) return String.fromCodePoint(parseInt(ref.slice(1), 10));
    return ({ amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" } as Record<string, string>)[ref]!;
  });
}
