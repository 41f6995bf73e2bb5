/*
 * A small XML reader, enough for zypper's `-x` stream (the agent bundle carries no dependencies):
 * elements, attributes, text, the five predefined entities and character references. No DTDs,
 * namespaces or processing instructions beyond the declaration; anything malformed throws
 * XmlSyntaxError.
 */

// entities and character references. Enough for zypper's regular output; anything malformed throws.

export interface XmlElement {
  name: string;
  attributes: Record<string, string>;
  children: Array<XmlElement | string>;
}

export class XmlSyntaxError extends Error {
  override name = 'XmlSyntaxError';
}

const NAMED_ENTITIES: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

export function decodeXmlEntities(text: string): string {
  return text.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-zA-Z]+);/g, (whole, ref: string) => {
    if (ref.startsWith('#x') || ref.startsWith('#')) {
      const code = ref.startsWith('#x') ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10);
      return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : whole;
    }
    return NAMED_ENTITIES[ref] ?? whole;
  });
}

/** Parses a whole document; returns a synthetic `#document` element holding the top-level nodes. */
export function parseXml(text: string): XmlElement {
  const document: XmlElement = { name: '#document', attributes: {}, children: [] };
  const stack: XmlElement[] = [document];
  const top = () => stack[stack.length - 1]!;
  const addText = (raw: string) => {
    if (!raw) return;
    const siblings = top().children;
    const last = siblings[siblings.length - 1];
    if (typeof last === 'string') siblings[siblings.length - 1] = last + raw;
    else siblings.push(raw);
  };
  const fail = (message: string, at: number): never => {
    throw new XmlSyntaxError(`${message} at offset ${at}`);
  };
  const skipTo = (token: string, from: number) => {
    const end = text.indexOf(token, from);
    if (end === -1) fail(`unterminated markup (expected ${token})`, from);
    return end + token.length;
  };

  let i = 0;
  while (i < text.length) {
    const lt = text.indexOf('<', i);
    if (lt === -1) {
      addText(decodeXmlEntities(text.slice(i)));
      break;
    }
    if (lt > i) addText(decodeXmlEntities(text.slice(i, lt)));
    if (text.startsWith('<?', lt)) {
      i = skipTo('?>', lt);
    } else if (text.startsWith('<!--', lt)) {
      i = skipTo('-->', lt);
    } else if (text.startsWith('<![CDATA[', lt)) {
      const end = skipTo(']]>', lt);
      addText(text.slice(lt + 9, end - 3));
      i = end;
    } else if (text.startsWith('<!', lt)) {
      i = skipTo('>', lt);
    } else if (text.startsWith('</', lt)) {
      const end = skipTo('>', lt);
      const name = text.slice(lt + 2, end - 1).trim();
      if (stack.length === 1 || top().name !== name) fail(`unexpected </${name}>`, lt);
      stack.pop();
      i = end;
    } else {
      const nameMatch = /^[^\s/>]+/.exec(text.slice(lt + 1, lt + 257));
      if (!nameMatch) fail('element without a name', lt);
      const element: XmlElement = { name: nameMatch![0], attributes: {}, children: [] };
      let j = lt + 1 + element.name.length;
      for (;;) {
        while (j < text.length && /\s/.test(text[j]!)) j++;
        if (j >= text.length) fail(`unterminated <${element.name}>`, lt);
        if (text.startsWith('/>', j)) {
          top().children.push(element);
          j += 2;
          break;
        }
        if (text[j] === '>') {
          top().children.push(element);
          stack.push(element);
          j += 1;
          break;
        }
        const attribute = /^([^\s=/>]+)\s*=\s*(["'])/.exec(text.slice(j, j + 512));
        if (!attribute) fail(`malformed attribute in <${element.name}>`, j);
        const valueStart = j + attribute![0].length;
        const valueEnd = text.indexOf(attribute![2]!, valueStart);
        if (valueEnd === -1) fail(`unterminated attribute value in <${element.name}>`, j);
        element.attributes[attribute![1]!] = decodeXmlEntities(text.slice(valueStart, valueEnd));
        j = valueEnd + 1;
      }
      i = j;
    }
  }
  if (stack.length > 1) fail(`unclosed <${top().name}>`, text.length);
  return document;
}

/** Child elements, optionally only those with this name. */
export function childElements(element: XmlElement, name?: string): XmlElement[] {
  return element.children.filter((c): c is XmlElement => typeof c !== 'string' && (name === undefined || c.name === name));
}

/** Every element below this one (depth first, document order) with this name. */
export function descendants(element: XmlElement, name: string): XmlElement[] {
  const found: XmlElement[] = [];
  const visit = (e: XmlElement) => {
    for (const child of childElements(e)) {
      if (child.name === name) found.push(child);
      visit(child);
    }
  };
  visit(element);
  return found;
}

export function textContent(element: XmlElement): string {
  return element.children.map((c) => (typeof c === 'string' ? c : textContent(c))).join('');
}
