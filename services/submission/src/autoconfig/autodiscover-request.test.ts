/**
 * The Autodiscover request reader: Outlook's request shapes are read; DTDs
 * (XXE, entity expansion), unknown entities and ambiguous requests are refused.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AUTODISCOVER_REQUEST_NS, parseAutodiscoverRequest } from './autodiscover-request.ts';

const outlook = (
  email: string,
  schema = 'http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a',
) =>
  `<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="${AUTODISCOVER_REQUEST_NS}">
  <Request>
    <EMailAddress>${email}</EMailAddress>
    <AcceptableResponseSchema>${schema}</AcceptableResponseSchema>
  </Request>
</Autodiscover>`;

describe('parseAutodiscoverRequest', () => {
  it("reads Outlook's request, with or without a namespace prefix", () => {
    assert.deepEqual(parseAutodiscoverRequest(outlook('jane@example.org')), {
      ok: true,
      emailAddress: 'jane@example.org',
      acceptableResponseSchema:
        'http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a',
    });
    const prefixed = `<a:Autodiscover xmlns:a="${AUTODISCOVER_REQUEST_NS}"><a:Request><a:EMailAddress> jane@example.org </a:EMailAddress></a:Request></a:Autodiscover>`;
    assert.deepEqual(parseAutodiscoverRequest(prefixed), { ok: true, emailAddress: 'jane@example.org' });
  });

  it('resolves the predefined entities and character references only', () => {
    const r = parseAutodiscoverRequest(outlook('a&amp;b&#x2B;c&#64;@example.org'));
    assert.deepEqual(r.ok && r.emailAddress, 'a&b+c@@example.org');
    assert.equal(parseAutodiscoverRequest(outlook('a&nbsp;b@example.org')).ok, false);
    assert.equal(parseAutodiscoverRequest(outlook('a&b@example.org')).ok, false, 'a bare & is not XML');
    assert.equal(parseAutodiscoverRequest(outlook('a&#xD800;@example.org')).ok, false, 'surrogate');
  });

  it('refuses XXE and entity expansion before reading anything', () => {
    const xxe = `<?xml version="1.0"?>
<!DOCTYPE Autodiscover [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Autodiscover xmlns="${AUTODISCOVER_REQUEST_NS}"><Request><EMailAddress>&xxe;</EMailAddress></Request></Autodiscover>`;
    const r = parseAutodiscoverRequest(xxe);
    assert.equal(r.ok, false);
    assert.match(!r.ok ? r.reason : '', /DOCTYPE/);
    const laughs = `<!DOCTYPE a [<!ENTITY l "lol"><!ENTITY l2 "&l;&l;&l;&l;">]><Autodiscover><Request><EMailAddress>&l2;@example.org</EMailAddress></Request></Autodiscover>`;
    assert.equal(parseAutodiscoverRequest(laughs).ok, false);
    const comment = outlook('jane@example.org').replace('<Request>', '<Request><!-- hi -->');
    assert.equal(parseAutodiscoverRequest(comment).ok, false, 'no markup declarations at all');
  });

  it('refuses what is not one Autodiscover request for one address', () => {
    assert.equal(
      parseAutodiscoverRequest('<Other><EMailAddress>a@example.org</EMailAddress></Other>').ok,
      false,
    );
    const two = outlook('a@example.org').replace(
      '</Request>',
      '<EMailAddress>b@example.org</EMailAddress></Request>',
    );
    assert.equal(parseAutodiscoverRequest(two).ok, false);
    assert.equal(parseAutodiscoverRequest(`<Autodiscover><Request></Request></Autodiscover>`).ok, false);
    assert.equal(parseAutodiscoverRequest('').ok, false);
  });
});
