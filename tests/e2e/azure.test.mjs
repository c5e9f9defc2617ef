// End-to-end: the official `openai` SDK through skuld to an azure provider
// (mock-upstream's Azure OpenAI shape): chat (stream and not), embeddings, an
// Entra ID bearer token instead of the api-key header, and Azure's 401 for a
// wrong key arriving as the SDK's AuthenticationError. The mock accepts the
// harness's UPSTREAM_KEY as api-key and as bearer token.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import OpenAI from 'openai';

import { UPSTREAM_KEY, startStack } from './harness.mjs';

const TIMEOUT = 10000;
process.env.SKULD_E2E_AZURE_BAD = 'not-the-key';

let stack;
let openai;

const it = (name, fn) =>
  test(name, { timeout: TIMEOUT }, async () => {
    try {
      await fn();
    } catch (err) {
      if (stack) err.message += `\n${stack.logs()}`;
      throw err;
    }
  });

describe('openai sdk through skuld to azure', { timeout: 60000 }, () => {
  before(async () => {
    stack = await startStack({
      providers: [
        { name: 'az', type: 'azure', path: '', extra: { health_check: 'none' } },
        { name: 'az-entra', type: 'azure', path: '', extra: { auth: 'entra', health_check: 'none' } },
        { name: 'az-bad', type: 'azure', path: '', keyEnv: 'SKULD_E2E_AZURE_BAD', extra: { health_check: 'none' } },
      ],
      models: [
        { name: 'azure-gpt', provider: 'az', model: 'gpt-4o-dep' },
        { name: 'azure-entra', provider: 'az-entra', model: 'gpt-4o-dep' },
        { name: 'azure-bad', provider: 'az-bad', model: 'gpt-4o-dep' },
        { name: 'azure-embed', provider: 'az', model: 'embed-dep', capabilities: ['embeddings'] },
      ],
    });
    openai = new OpenAI({ baseURL: stack.baseURL, apiKey: 'client-key', maxRetries: 0, timeout: 8000 });
  });

  after(async () => {
    if (!stack) return;
    const st = await stack.stop();
    assert.equal(st.skuld.code, 0, `skuld exit status ${JSON.stringify(st.skuld)}`);
  });

  it('chat completion with the api-key header', async () => {
    const r = await openai.chat.completions.create({ model: 'azure-gpt', messages: [{ role: 'user', content: 'say hello' }] });
    assert.equal(r.choices[0].message.content, 'c0 c1 c2 c3 c4');
    assert.equal(r.usage.completion_tokens, 5);
    const last = await stack.mock('/_mock/last');
    assert.equal(last.path, '/openai/deployments/gpt-4o-dep/chat/completions');
    assert.equal(last.query, 'api-version=2024-10-21');
    assert.equal(last.headers['api-key'], UPSTREAM_KEY);
    assert.equal(last.headers.authorization, undefined);
  });

  it('stream, with the usage the client asked for', async () => {
    const stream = await openai.chat.completions.create({
      model: 'azure-gpt',
      stream: true,
      stream_options: { include_usage: true },
      messages: [{ role: 'user', content: 'say hello' }],
    });
    let text = '';
    let usage;
    for await (const c of stream) {
      assert.ok(c.id, JSON.stringify(c)); // Azure's prompt-filter preamble is not passed on
      text += c.choices[0]?.delta?.content ?? '';
      if (c.usage) usage = c.usage;
    }
    assert.equal(text, 'c0 c1 c2 c3 c4 ');
    assert.equal(usage.completion_tokens, 5);
  });

  it('embeddings', async () => {
    const r = await openai.embeddings.create({ model: 'azure-embed', input: ['a b', 'c'] });
    assert.equal(r.data.length, 2);
    assert.equal(r.data[0].embedding.length, 8);
    assert.equal((await stack.mock('/_mock/last')).path, '/openai/deployments/embed-dep/embeddings');
  });

  it('Entra ID bearer token', async () => {
    const r = await openai.chat.completions.create({ model: 'azure-entra', messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(r.choices[0].message.content, 'c0 c1 c2 c3 c4');
    const last = await stack.mock('/_mock/last');
    assert.equal(last.headers.authorization, `Bearer ${UPSTREAM_KEY}`);
    assert.equal(last.headers['api-key'], undefined);
  });

  it('a wrong key: AuthenticationError in the OpenAI shape', async () => {
    await assert.rejects(
      openai.chat.completions.create({ model: 'azure-bad', messages: [{ role: 'user', content: 'hi' }] }),
      (err) => {
        assert.ok(err instanceof OpenAI.AuthenticationError, String(err));
        assert.equal(err.status, 401);
        assert.equal(err.code, 'invalid_api_key');
        assert.equal(err.type, 'authentication_error');
        assert.match(err.message, /Access denied due to invalid subscription key/);
        return true;
      },
    );
  });
});
