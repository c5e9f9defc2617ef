// End-to-end: the official clients through skuld across wire shapes.
//  - `@anthropic-ai/sdk` against POST /v1/messages, served by an
//    OpenAI-shaped upstream (stream and not, tool use, errors);
//  - `openai` against /v1/chat/completions, served by the Anthropic-,
//    Gemini- and Ollama-shaped mock upstreams (stream and not, tool calls,
//    usage with cached tokens, x-skuld-cost-usd, errors).
// skuld translates the request body, so the mock is scripted through
// POST /_mock/config (process-wide defaults), reset after every test.
// Expected usage and cost are computed by hand in the comments: prompt tokens
// = words of the message contents, completion = words of the reply
// (default reply "c0 c1 c2 c3 c4" = 5 words; a tool call's '{"x":1}' = 1).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';

import { UPSTREAM_KEY, startStack } from './harness.mjs';

const CLIENT_KEY = 'sk-e2e-client-key-not-for-upstream';
const TIMEOUT = 10000;
const TEXT = 'c0 c1 c2 c3 c4';
const STREAM_TEXT = 'c0 c1 c2 c3 c4 ';
const TOOLS = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { x: { type: 'number' } } } } }];

// USD per 1M tokens.
const PRICES = {
  chat: { input: 2, output: 8, cached: 0.5 },
  claude: { input: 3, output: 15, cached: 0.3 },
  gemini: { input: 1.25, output: 10, cached: 0.3125 },
  ollama: { input: 0.1, output: 0.2, cached: 0 },
};

let stack;
let openai;
let anthropic;

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

async function metric(name, labels) {
  const text = await (await fetch(`${stack.url}/metrics`)).text();
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{')) continue;
    if (want.every((w) => line.includes(w))) return Number(line.split(' ').pop());
  }
  return 0;
}

describe('official clients through skuld across provider shapes', { timeout: 120000 }, () => {
  before(async () => {
    stack = await startStack({
      providers: [
        { name: 'anth', type: 'anthropic', path: '/v1' },
        { name: 'gem', type: 'gemini', path: '/v1beta' },
        { name: 'oll', type: 'ollama', path: '', key: false },
      ],
      models: [
        { name: 'chat', model: 'mock-model', price: PRICES.chat },
        { name: 'claude', provider: 'anth', model: 'claude-up', price: PRICES.claude },
        { name: 'gemini', provider: 'gem', model: 'gemini-up', price: PRICES.gemini },
        { name: 'ollama', provider: 'oll', model: 'llama-up', price: PRICES.ollama, capabilities: ['chat', 'tools'] },
      ],
    });
    openai = new OpenAI({ baseURL: stack.baseURL, apiKey: CLIENT_KEY, maxRetries: 0, timeout: 8000 });
    anthropic = new Anthropic({ baseURL: stack.url, apiKey: CLIENT_KEY, maxRetries: 0, timeout: 8000 });
  });

  after(async () => {
    if (!stack) return;
    const st = await stack.stop();
    assert.equal(st.skuld.code, 0, `skuld exit status ${JSON.stringify(st.skuld)}`);
  });

  // ---------------- @anthropic-ai/sdk -> /v1/messages -> OpenAI upstream ----------------

  it('anthropic sdk: message (non-stream), usage with cached tokens, cost header', async () => {
    await script({ cached_tokens: 2 });
    const { data: msg, response } = await anthropic.messages
      .create({ model: 'chat', max_tokens: 100, system: 'be brief', messages: [{ role: 'user', content: 'say hello world' }] })
      .withResponse();
    assert.equal(msg.type, 'message');
    assert.equal(msg.role, 'assistant');
    assert.equal(msg.model, 'chat');
    assert.deepEqual(msg.content, [{ type: 'text', text: TEXT }]);
    assert.equal(msg.stop_reason, 'end_turn');
    // prompt = 2 (system) + 3 = 5 words, 2 of them cached -> input_tokens 3
    assert.equal(msg.usage.input_tokens, 3);
    assert.equal(msg.usage.cache_read_input_tokens, 2);
    assert.equal(msg.usage.output_tokens, 5);
    // (3 * 2 + 2 * 0.5 + 5 * 8) / 1e6 = 47e-6
    assert.equal(response.headers.get('x-skuld-cost-usd'), '0.000047');
    const last = await stack.mock('/_mock/last');
    assert.equal(last.path, '/v1/chat/completions');
    assert.equal(last.body.messages[0].role, 'system');
    assert.equal(last.body.max_tokens, 100);
    assert.equal(last.headers.authorization, `Bearer ${UPSTREAM_KEY}`);
  });

  it('anthropic sdk: stream with the full event sequence', async () => {
    const stream = anthropic.messages.stream({ model: 'chat', max_tokens: 50, messages: [{ role: 'user', content: 'say hello world' }] });
    const types = [];
    for await (const ev of stream) types.push(ev.type);
    const final = await stream.finalMessage();
    assert.equal(types[0], 'message_start');
    assert.equal(types[1], 'content_block_start');
    assert.deepEqual(types.slice(-3), ['content_block_stop', 'message_delta', 'message_stop']);
    assert.equal(types.filter((t) => t === 'content_block_delta').length, 5);
    assert.equal(final.content.length, 1);
    assert.equal(final.content[0].type, 'text');
    assert.equal(final.content[0].text, STREAM_TEXT);
    assert.equal(final.stop_reason, 'end_turn');
    assert.equal(final.usage.output_tokens, 5);
    assert.equal(final.usage.input_tokens, 3);
  });

  it('anthropic sdk: tool use (non-stream) and a tool_result round trip', async () => {
    await script({ tool_call: true });
    const tools = [{ name: 'get_weather', description: 'weather', input_schema: { type: 'object', properties: { x: { type: 'number' } } } }];
    const msg = await anthropic.messages.create({
      model: 'chat',
      max_tokens: 100,
      tools,
      tool_choice: { type: 'any' },
      messages: [{ role: 'user', content: 'weather please' }],
    });
    assert.equal(msg.stop_reason, 'tool_use');
    const use = msg.content.find((b) => b.type === 'tool_use');
    assert.equal(use.name, 'get_weather');
    assert.deepEqual(use.input, { x: 1 });
    let last = await stack.mock('/_mock/last');
    assert.equal(last.body.tool_choice, 'required');
    assert.equal(last.body.tools[0].function.name, 'get_weather');

    await script({});
    const reply = await anthropic.messages.create({
      model: 'chat',
      max_tokens: 100,
      tools,
      messages: [
        { role: 'user', content: 'weather please' },
        { role: 'assistant', content: msg.content },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: 'sunny' }] },
      ],
    });
    assert.equal(reply.content[0].text, TEXT);
    last = await stack.mock('/_mock/last');
    const tool = last.body.messages.find((m) => m.role === 'tool');
    assert.equal(tool.tool_call_id, use.id);
    assert.equal(tool.content, 'sunny');
    assert.equal(last.body.messages[1].tool_calls[0].function.arguments, '{"x":1}');
  });

  it('anthropic sdk: streamed tool use', async () => {
    await script({ tool_call: true });
    const stream = anthropic.messages.stream({
      model: 'chat',
      max_tokens: 100,
      tools: [{ name: 'get_weather', input_schema: { type: 'object' } }],
      messages: [{ role: 'user', content: 'weather please' }],
    });
    const final = await stream.finalMessage();
    assert.equal(final.stop_reason, 'tool_use');
    const use = final.content.find((b) => b.type === 'tool_use');
    assert.equal(use.name, 'get_weather');
    assert.deepEqual(use.input, { x: 1 });
  });

  it("anthropic sdk: errors in Anthropic's shape", async () => {
    await assert.rejects(
      anthropic.messages.create({ model: 'nope', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }),
      (err) => err instanceof Anthropic.NotFoundError && err.status === 404 && err.error?.error?.type === 'not_found_error',
    );
    await script({ status: 429, retry_after: 3 });
    await assert.rejects(
      anthropic.messages.create({ model: 'chat', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }),
      (err) => err instanceof Anthropic.RateLimitError && err.error?.error?.type === 'rate_limit_error' && /mock error 429/.test(err.message),
    );
    await script({ cut_after: 2 });
    const stream = anthropic.messages.stream({ model: 'chat', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] });
    await assert.rejects(stream.finalMessage());
  });

  // ---------------- openai sdk -> /v1/chat/completions -> other provider shapes ----------------

  const shapes = [
    { model: 'claude', path: '/v1/messages', auth: (h) => h['x-api-key'] === UPSTREAM_KEY && h['anthropic-version'] === '2023-06-01', cached: true },
    { model: 'gemini', path: '/v1beta/models/gemini-up:generateContent', auth: (h) => h['x-goog-api-key'] === UPSTREAM_KEY, cached: true },
    { model: 'ollama', path: '/api/chat', auth: (h) => !h.authorization && !h['x-api-key'], cached: false },
  ];
  // cost of 3 prompt words (c of them cached) and 5 completion words, hand-computed
  const cost = {
    claude: { 0: '0.000084', 2: '0.0000786' }, // 3*3+5*15=84; 1*3+2*0.3+75=78.6
    gemini: { 0: '0.00005375', 2: '0.000051875' }, // 3*1.25+50=53.75; 1.25+0.625+50=51.875
    ollama: { 0: '0.0000013' }, // 0.3+1.0
  };

  for (const sh of shapes) {
    it(`openai sdk -> ${sh.model}: completion, upstream shape and key, usage, cost`, async () => {
      const { data: res, response } = await openai.chat.completions
        .create({ model: sh.model, messages: [{ role: 'user', content: 'say hello world' }], max_tokens: 20 })
        .withResponse();
      assert.equal(res.object, 'chat.completion');
      assert.equal(res.choices[0].message.content, TEXT);
      assert.equal(res.choices[0].finish_reason, 'stop');
      assert.deepEqual([res.usage.prompt_tokens, res.usage.completion_tokens, res.usage.total_tokens], [3, 5, 8]);
      assert.equal(response.headers.get('x-skuld-cost-usd'), cost[sh.model][0]);
      assert.equal(response.headers.get('x-skuld-provider'), { claude: 'anth', gemini: 'gem', ollama: 'oll' }[sh.model]);
      const last = await stack.mock('/_mock/last');
      assert.equal(last.path, sh.path);
      assert.ok(sh.auth(last.headers), `upstream auth headers: ${JSON.stringify(last.headers)}`);
      assert.ok(!JSON.stringify(last).includes(CLIENT_KEY), 'the client key must not reach the upstream');
    });

    if (sh.cached) {
      it(`openai sdk -> ${sh.model}: cached prompt tokens in usage and cost`, async () => {
        await script({ cached_tokens: 2 });
        const { data: res, response } = await openai.chat.completions
          .create({ model: sh.model, messages: [{ role: 'user', content: 'say hello world' }] })
          .withResponse();
        assert.equal(res.usage.prompt_tokens, 3);
        assert.equal(res.usage.prompt_tokens_details.cached_tokens, 2);
        assert.equal(response.headers.get('x-skuld-cost-usd'), cost[sh.model][2]);
      });
    }

    it(`openai sdk -> ${sh.model}: stream with usage, cost counted in metrics`, async () => {
      const before_ = await metric('skuld_cost_usd_total', { model: sh.model });
      const stream = await openai.chat.completions.create({
        model: sh.model,
        messages: [{ role: 'user', content: 'say hello world' }],
        stream: true,
        stream_options: { include_usage: true },
      });
      let text = '';
      let finish = null;
      let usage = null;
      for await (const chunk of stream) {
        if (chunk.usage) usage = chunk.usage;
        const ch = chunk.choices[0];
        if (!ch) continue;
        text += ch.delta.content ?? '';
        finish = ch.finish_reason ?? finish;
      }
      assert.equal(text, STREAM_TEXT);
      assert.equal(finish, 'stop');
      assert.deepEqual([usage.prompt_tokens, usage.completion_tokens], [3, 5]);
      const after_ = await metric('skuld_cost_usd_total', { model: sh.model });
      assert.ok(Math.abs(after_ - before_ - Number(cost[sh.model][0])) < 1e-9, `cost delta ${after_ - before_}`);
    });

    it(`openai sdk -> ${sh.model}: streamed tool call`, async () => {
      await script({ tool_call: true });
      const stream = await openai.chat.completions.create({
        model: sh.model,
        messages: [{ role: 'user', content: 'weather please' }],
        tools: TOOLS,
        stream: true,
      });
      const calls = {};
      let finish = null;
      for await (const chunk of stream) {
        const ch = chunk.choices[0];
        if (!ch) continue;
        for (const tc of ch.delta.tool_calls ?? []) {
          calls[tc.index] ??= { id: '', name: '', args: '' };
          if (tc.id) calls[tc.index].id = tc.id;
          if (tc.function?.name) calls[tc.index].name += tc.function.name;
          if (tc.function?.arguments) calls[tc.index].args += tc.function.arguments;
        }
        finish = ch.finish_reason ?? finish;
      }
      assert.equal(finish, 'tool_calls');
      assert.equal(Object.keys(calls).length, 1);
      assert.equal(calls[0].name, 'get_weather');
      assert.ok(calls[0].id);
      assert.deepEqual(JSON.parse(calls[0].args), { x: 1 });
    });

    it(`openai sdk -> ${sh.model}: tool call round trip (non-stream)`, async () => {
      await script({ tool_call: true });
      const res = await openai.chat.completions.create({ model: sh.model, messages: [{ role: 'user', content: 'weather please' }], tools: TOOLS });
      const call = res.choices[0].message.tool_calls[0];
      assert.equal(res.choices[0].finish_reason, 'tool_calls');
      assert.equal(call.function.name, 'get_weather');
      assert.deepEqual(JSON.parse(call.function.arguments), { x: 1 });
      await script({});
      const res2 = await openai.chat.completions.create({
        model: sh.model,
        tools: TOOLS,
        messages: [
          { role: 'user', content: 'weather please' },
          res.choices[0].message,
          { role: 'tool', tool_call_id: call.id, content: '{"temp":21}' },
        ],
      });
      assert.equal(res2.choices[0].message.content, TEXT);
    });

    it(`openai sdk -> ${sh.model}: upstream errors keep their status in OpenAI's shape`, async () => {
      await script({ status: 429 });
      await assert.rejects(
        openai.chat.completions.create({ model: sh.model, messages: [{ role: 'user', content: 'x' }] }),
        (err) => err instanceof OpenAI.RateLimitError && err.status === 429 && /mock error 429/.test(err.message),
      );
      await script({ status: 500 });
      await assert.rejects(
        openai.chat.completions.create({ model: sh.model, messages: [{ role: 'user', content: 'x' }] }),
        (err) => err instanceof OpenAI.InternalServerError && /mock error 500/.test(err.message),
      );
      await script({ cut_after: 2 });
      const stream = await openai.chat.completions.create({ model: sh.model, messages: [{ role: 'user', content: 'x' }], stream: true });
      await assert.rejects(async () => {
        for await (const _ of stream); // eslint-disable-line no-unused-vars
      });
    });
  }

  it('openai sdk -> gemini: a safety block is finish_reason content_filter', async () => {
    await script({ safety: true });
    const res = await openai.chat.completions.create({ model: 'gemini', messages: [{ role: 'user', content: 'x' }] });
    assert.equal(res.choices[0].finish_reason, 'content_filter');
  });

  it('openai sdk: image input only to deployments with the vision capability', async () => {
    const image = [{ type: 'text', text: 'what is this' }, { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } }];
    await assert.rejects(
      openai.chat.completions.create({ model: 'ollama', messages: [{ role: 'user', content: image }] }),
      (err) => err.status === 400 && /vision/.test(err.message) && err.code === 'model_capability_missing',
    );
    const res = await openai.chat.completions.create({ model: 'claude', messages: [{ role: 'user', content: image }] });
    assert.equal(res.choices[0].message.content, TEXT);
    const last = await stack.mock('/_mock/last');
    assert.equal(last.body.messages[0].content[1].source.type, 'base64');
  });
});
