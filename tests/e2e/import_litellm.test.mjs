// End-to-end: a LiteLLM proxy config (tests/integration/litellm/serve_mock.yaml,
// its api_base pointed at the mock upstream this test starts) converted by
// `skuld import litellm`, served by `skuld serve`, and called with the
// official `openai` npm client: the master key guards it, the model group's
// deployments answer with the upstream ids and key of the LiteLLM file, the
// prices per token become the cost per 1M, and a failing group falls back to
// the anthropic/ deployment (translated to the Messages shape); the azure/
// deployment calls the mock's Azure shape (deployment URL, api-version, api-key).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import OpenAI from 'openai';

import { KEY_ENV, SKULD_BIN, UPSTREAM_KEY, startStack } from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const LITELLM = path.resolve(here, '..', 'integration', 'litellm', 'serve_mock.yaml');
const MASTER_KEY = 'sk-e2e-litellm-master';
const TIMEOUT = 10000;
const TEXT = 'c0 c1 c2 c3 c4';

let stack;
let client;
let imported; // the converted config, for failure messages

const it = (name, fn) =>
  test(name, { timeout: TIMEOUT }, async (t) => {
    try {
      await fn(t);
    } catch (err) {
      if (stack) err.message += `\n--- imported config ---\n${imported}\n${stack.logs()}`;
      throw err;
    }
  });

describe('a LiteLLM config imported with skuld import litellm, through the openai SDK', { timeout: 60000 }, () => {
  before(async () => {
    process.env.SKULD_E2E_MASTER_KEY = MASTER_KEY; // general_settings.master_key: os.environ/...
    stack = await startStack({
      config: (mockPort, dir) => {
        const text = fs.readFileSync(LITELLM, 'utf8').replaceAll('127.0.0.1:4010', `127.0.0.1:${mockPort}`);
        assert.ok(text.includes(`os.environ/${KEY_ENV}`), 'the LiteLLM file names the harness key variable');
        const file = path.join(dir, 'litellm.yaml');
        fs.writeFileSync(file, text);
        // exit status 0, nothing on stderr: --strict fails on anything not converted
        imported = execFileSync(SKULD_BIN, ['import', 'litellm', file, '--strict'], {
          encoding: 'utf8',
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        return imported;
      },
    });
    client = new OpenAI({ baseURL: stack.baseURL, apiKey: MASTER_KEY, maxRetries: 0, timeout: 8000 });
  });

  after(async () => {
    if (!stack) return;
    const st = await stack.stop();
    assert.equal(st.skuld.code, 0, `skuld exit status ${JSON.stringify(st.skuld)}`);
  });

  it('the master key is required (auth.required from general_settings.master_key)', async () => {
    const anon = new OpenAI({ baseURL: stack.baseURL, apiKey: 'sk-not-the-master-key', maxRetries: 0, timeout: 8000 });
    await assert.rejects(
      anon.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] }),
      (err) => err.status === 401,
    );
  });

  it('models: the LiteLLM model_names', async () => {
    const ids = [];
    for await (const m of client.models.list()) ids.push(m.id);
    assert.ok(ids.includes('gpt-4o'), JSON.stringify(ids));
    assert.ok(ids.includes('claude'), JSON.stringify(ids));
  });

  it('chat completion on the model group: upstream id, key and cost per 1M tokens', async () => {
    const seen = new Set();
    for (let i = 0; i < 8; i++) {
      const { data: res, response } = await client.chat.completions
        .create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'say hello world' }] })
        .withResponse();
      assert.equal(res.choices[0].message.content, TEXT);
      assert.equal(res.usage.prompt_tokens, 3);
      assert.equal(res.usage.completion_tokens, 5);
      // input 0.000002/token -> 2 per 1M, output 0.000008 -> 8: (3 * 2 + 5 * 8) / 1e6
      assert.equal(response.headers.get('x-skuld-cost-usd'), '0.000046');
      const last = await stack.mock('/_mock/last');
      assert.equal(last.path, '/v1/chat/completions');
      assert.equal(last.headers.authorization, `Bearer ${UPSTREAM_KEY}`);
      assert.ok(!JSON.stringify(last).includes(MASTER_KEY), 'the master key must not reach the upstream');
      seen.add(last.body.model);
    }
    // weights 3:1 over round_robin: both deployments of the group serve
    assert.deepEqual([...seen].sort(), ['mock-model', 'mock-model-b']);
  });

  it('streamed chat completion', async () => {
    const stream = await client.chat.completions.create({
      model: 'gpt-4o',
      stream: true,
      messages: [{ role: 'user', content: 'stream please' }],
    });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    assert.equal(text, 'c0 c1 c2 c3 c4 ');
  });

  it('anthropic/ deployment: translated to the Messages API at the api_base', async () => {
    const res = await client.chat.completions.create({ model: 'claude', messages: [{ role: 'user', content: 'hello' }] });
    assert.equal(res.choices[0].message.content, TEXT);
    const last = await stack.mock('/_mock/last');
    assert.equal(last.path, '/v1/messages');
    assert.equal(last.body.model, 'claude-up');
    assert.equal(last.headers['x-api-key'], UPSTREAM_KEY);
  });

  it('azure/ deployment: the deployment URL with api_version and the api-key header', async () => {
    const res = await client.chat.completions.create({ model: 'azure-gpt', messages: [{ role: 'user', content: 'hello' }] });
    assert.equal(res.choices[0].message.content, TEXT);
    const last = await stack.mock('/_mock/last');
    assert.equal(last.path, '/openai/deployments/mock-deployment/chat/completions');
    assert.equal(last.query, 'api-version=2025-01-01-preview');
    assert.equal(last.headers['api-key'], UPSTREAM_KEY); // the harness mock's --azure-key
    assert.equal(last.headers.authorization, undefined);
  });

  it('router_settings.fallbacks: a failing group falls back to claude', async () => {
    // the mock field reaches the OpenAI-shaped deployments as sent (500 from
    // both), and is not part of the Messages translation, so claude answers
    const { data: res, response } = await client.chat.completions
      .create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'fall back' }], mock: { status: 500 } })
      .withResponse();
    assert.equal(res.choices[0].message.content, TEXT);
    assert.equal(response.headers.get('x-skuld-model'), 'claude');
    assert.equal(response.headers.get('x-skuld-attempts'), '3');
    const last = await stack.mock('/_mock/last');
    assert.equal(last.path, '/v1/messages');
  });
});
