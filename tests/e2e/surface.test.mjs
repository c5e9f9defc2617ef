// End-to-end, issue 17: the official clients on the API surface beyond chat.
//  - `openai`: client.models.retrieve (a model, a route, an id with a slash,
//    404 for an unknown one);
//  - `@anthropic-ai/sdk`: client.messages.countTokens on an Anthropic
//    deployment (the upstream's count), a local llama.cpp model (its
//    tokenizer, equal to a chat's prompt_tokens), the echo model, and an
//    OpenAI-compatible one (the estimate, flagged by x-skuld-token-count);
//    errors raised as the SDK's own error classes;
//  - `openai`: client.embeddings.create with the SDK's default (it asks for
//    base64 and decodes it), "float" and dimensions, on an OpenAI-compatible
//    deployment (passed through), the echo and llama.cpp models and the
//    Gemini- and Ollama-shaped mocks (translated by skuld).
// The mock counts words of the system and message text + 10 per tool.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';

import { SKULD_BIN, startStack } from './harness.mjs';

const TIMEOUT = 20000;
const TOOL = { name: 'get_weather', description: 'the weather', input_schema: { type: 'object', properties: { city: { type: 'string' } } } };
const MESSAGES = [
  { role: 'user', content: 'hello there world' },
  { role: 'assistant', content: 'hi' },
  { role: 'user', content: 'how are you' },
];

let stack;
let openai;
let anthropic;
let dir;

const it = (name, fn) =>
  test(name, { timeout: TIMEOUT }, async (t) => {
    try {
      await fn(t);
    } catch (err) {
      if (stack) err.message += `\n${stack.logs()}`;
      throw err;
    } finally {
      if (stack) await stack.mock('/_mock/config', { method: 'POST', body: '{}' });
    }
  });

const script = (cfg) => stack.mock('/_mock/config', { method: 'POST', body: JSON.stringify(cfg) });

describe('official clients on models, token counts and embeddings', { timeout: 180000 }, () => {
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skuld-e2e-surface-'));
    const demo = path.join(dir, 'demo.gguf');
    const r = spawnSync(SKULD_BIN, ['demo-model', '-o', demo], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    stack = await startStack({
      providers: [
        { name: 'anth', type: 'anthropic', path: '/v1' },
        { name: 'gem', type: 'gemini', path: '/v1beta' },
        { name: 'oll', type: 'ollama', path: '', key: false },
        { name: 'builtin', type: 'echo' },
        { name: 'local', type: 'llamacpp' },
      ],
      models: [
        { name: 'chat', model: 'mock-model' },
        { name: 'org/slashed', model: 'mock-slashed' },
        { name: 'claude', provider: 'anth', model: 'claude-up' },
        { name: 'gem', provider: 'gem', model: 'gem-up' },
        { name: 'oll', provider: 'oll', model: 'oll-up' },
        { name: 'echo', provider: 'builtin' },
        { name: 'tiny', provider: 'local', path: demo },
      ],
    });
    openai = new OpenAI({ baseURL: stack.baseURL, apiKey: 'sk-e2e', maxRetries: 0, timeout: 15000 });
    anthropic = new Anthropic({ baseURL: stack.url, apiKey: 'sk-e2e', maxRetries: 0, timeout: 15000 });
  });

  after(async () => {
    if (stack) {
      const st = await stack.stop();
      assert.equal(st.skuld.code, 0, `skuld exit status ${JSON.stringify(st.skuld)}`);
    }
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  // ---------------- GET /v1/models/{id} ----------------

  it('openai sdk: models.retrieve returns the model object', async () => {
    assert.deepEqual(await openai.models.retrieve('claude'), { id: 'claude', object: 'model', created: 0, owned_by: 'anth' });
    assert.deepEqual(await openai.models.retrieve('tiny'), { id: 'tiny', object: 'model', created: 0, owned_by: 'local' });
    // the SDK percent-encodes the id: org%2Fslashed
    const m = await openai.models.retrieve('org/slashed');
    assert.equal(m.id, 'org/slashed');
    assert.equal(m.owned_by, 'mock');
    // every listed model retrieves to the object the list holds
    const list = [];
    for await (const x of openai.models.list()) list.push(x);
    for (const x of list) assert.deepEqual(await openai.models.retrieve(x.id), x);
  });

  it('openai sdk: models.retrieve of an unknown id is a NotFoundError', async () => {
    await assert.rejects(openai.models.retrieve('no-such-model'), (err) => {
      assert.ok(err instanceof OpenAI.NotFoundError, String(err));
      assert.equal(err.status, 404);
      assert.equal(err.code, 'model_not_found');
      assert.equal(err.param, 'model');
      assert.equal(err.type, 'invalid_request_error');
      return true;
    });
  });

  // ---------------- POST /v1/messages/count_tokens ----------------

  it('anthropic sdk: countTokens on an Anthropic deployment asks the upstream', async () => {
    const { data, response } = await anthropic.messages
      .countTokens({ model: 'claude', system: 'be brief', messages: MESSAGES, tools: [TOOL] })
      .withResponse();
    // 2 + 3 + 1 + 3 words + 10 for the tool
    assert.deepEqual(data, { input_tokens: 19 });
    assert.equal(response.headers.get('x-skuld-token-count'), 'provider');
    const last = await stack.mock('/_mock/last');
    assert.equal(last.path, '/v1/messages/count_tokens');
    assert.equal(last.body.model, 'claude-up');
    assert.equal(last.body.max_tokens, undefined);
  });

  it('anthropic sdk: countTokens on a local model is its tokenizer over the chat template', async () => {
    const chat = await openai.chat.completions.create({
      model: 'tiny',
      max_tokens: 1,
      messages: [{ role: 'system', content: 'be brief' }, ...MESSAGES],
    });
    const { data, response } = await anthropic.messages
      .countTokens({ model: 'tiny', system: 'be brief', messages: MESSAGES })
      .withResponse();
    assert.equal(data.input_tokens, chat.usage.prompt_tokens);
    assert.equal(response.headers.get('x-skuld-token-count'), 'exact');
    const echo = await anthropic.messages.countTokens({ model: 'echo', system: 'be brief', messages: MESSAGES });
    assert.deepEqual(echo, { input_tokens: 9 }); // words
  });

  it('anthropic sdk: countTokens on an OpenAI-compatible deployment is an estimate that says so', async () => {
    const before = (await stack.mock('/_mock/stats')).requests;
    const { data, response } = await anthropic.messages
      .countTokens({ model: 'chat', system: 'be brief', messages: MESSAGES })
      .withResponse();
    // (8 + 17 + 2 + 11) bytes / 4 + 4 per message (4 messages) = 9 + 16
    assert.deepEqual(data, { input_tokens: 25 });
    assert.equal(response.headers.get('x-skuld-token-count'), 'estimate');
    assert.equal((await stack.mock('/_mock/stats')).requests, before);
  });

  it('anthropic sdk: countTokens errors are the SDK error classes', async () => {
    await assert.rejects(anthropic.messages.countTokens({ model: 'nope', messages: MESSAGES }), (err) => {
      assert.ok(err instanceof Anthropic.NotFoundError, String(err));
      assert.equal(err.error.type, 'error');
      assert.equal(err.error.error.type, 'not_found_error');
      return true;
    });
    await assert.rejects(anthropic.messages.countTokens({ model: 'claude', max_tokens: 5, messages: MESSAGES }), (err) => {
      assert.ok(err instanceof Anthropic.BadRequestError, String(err));
      assert.match(err.error.error.message, /max_tokens/);
      return true;
    });
    await script({ status: 529 });
    await assert.rejects(anthropic.messages.countTokens({ model: 'claude', messages: MESSAGES }), (err) => {
      assert.equal(err.status, 503);
      assert.equal(err.error.error.type, 'overloaded_error');
      return true;
    });
  });

  // ---------------- embeddings ----------------

  const INPUTS = ['hello world', 'bye'];
  const NATIVE = { chat: 8, echo: 8, tiny: 64, gem: 8, oll: 8 };
  const norm = (v) => Math.sqrt(v.reduce((a, x) => a + x * x, 0));

  it('openai sdk: embeddings with the default encoding (base64) on every path', async () => {
    for (const [model, n] of Object.entries(NATIVE)) {
      const dflt = await openai.embeddings.create({ model, input: INPUTS });
      const flt = await openai.embeddings.create({ model, input: INPUTS, encoding_format: 'float' });
      assert.equal(dflt.data.length, 2, model);
      dflt.data.forEach((d, i) => {
        assert.equal(d.index, i);
        assert.equal(d.embedding.length, n, model);
        // the decoded base64 is the float32 of the float answer
        d.embedding.forEach((x, k) => assert.ok(Math.abs(x - flt.data[i].embedding[k]) < 1e-6, `${model}[${k}]`));
      });
      assert.ok(dflt.usage.prompt_tokens > 0, model);
    }
    // what the SDK asked for reached skuld: the OpenAI-compatible upstream got base64
    await openai.embeddings.create({ model: 'chat', input: 'x' });
    assert.equal((await stack.mock('/_mock/last')).body.encoding_format, 'base64');
  });

  it('openai sdk: embeddings with dimensions are cut and unit length on every path', async () => {
    for (const model of Object.keys(NATIVE)) {
      const full = await openai.embeddings.create({ model, input: INPUTS, encoding_format: 'float' });
      const cut = await openai.embeddings.create({ model, input: INPUTS, dimensions: 3 });
      cut.data.forEach((d, i) => {
        assert.equal(d.embedding.length, 3, model);
        assert.ok(Math.abs(norm(d.embedding) - 1) < 1e-5, model);
        const head = full.data[i].embedding.slice(0, 3);
        const k = norm(head);
        d.embedding.forEach((x, j) => assert.ok(Math.abs(x - head[j] / k) < 1e-5, `${model}[${j}]`));
      });
    }
    const last = async () => (await stack.mock('/_mock/last')).body;
    await openai.embeddings.create({ model: 'gem', input: 'x', dimensions: 3 });
    assert.equal((await last()).requests[0].outputDimensionality, 3);
    await openai.embeddings.create({ model: 'oll', input: 'x', dimensions: 3 });
    assert.equal((await last()).dimensions, 3);
  });

  it('openai sdk: embeddings errors are BadRequestErrors naming the parameter', async () => {
    for (const [model, n] of Object.entries({ echo: 8, tiny: 64, gem: 8 })) {
      await assert.rejects(openai.embeddings.create({ model, input: 'x', dimensions: n + 1 }), (err) => {
        assert.ok(err instanceof OpenAI.BadRequestError, `${model}: ${err}`);
        assert.equal(err.param, 'dimensions');
        assert.equal(err.code, 'invalid_value');
        return true;
      });
    }
    await assert.rejects(openai.embeddings.create({ model: 'oll', input: [[1, 2]] }), (err) => {
      assert.ok(err instanceof OpenAI.BadRequestError, String(err));
      assert.equal(err.param, 'input');
      return true;
    });
  });
});
