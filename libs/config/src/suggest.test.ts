import assert from 'node:assert/strict';
import { test } from 'node:test';
import { closest, editDistance } from './suggest.ts';

test('edit distance counts a swap of neighbours as one edit', () => {
  assert.equal(editDistance('hash', 'hash'), 0);
  assert.equal(editDistance('hsah', 'hash'), 1);
  assert.equal(editDistance('kitten', 'sitting'), 3);
  assert.equal(editDistance('', 'abc'), 3);
});

test('suggests only close names, ignoring case and underscores', () => {
  const keys = ['maxMessageBytes', 'maxRecipients', 'maxClients', 'listen'];
  assert.equal(closest('max_message_bytes', keys), 'maxMessageBytes');
  assert.equal(closest('maxMesageBytes', keys), 'maxMessageBytes');
  assert.equal(closest('lsiten', keys), 'listen');
  assert.equal(closest('port', keys), undefined);
});
