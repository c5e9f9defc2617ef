// End-to-end: the official `openai` npm client against the real skuld binary,
// which proxies to the real tools/mock-upstream. Run with
//   SKULD_BIN=... MOCK_UPSTREAM_BIN=... node --test openai.test.mjs
// The mock is scripted per request with a "mock" object in the body, which
// the client sends as-is (it forwards unknown params) and skuld passes on.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import OpenAI from 'openai';

import { UPSTREAM_KEY, startStack } from './harness.mjs';

const CLIENT_KEY = 'sk-e2e-client-key-not-for-upstream';
const TIMEOUT = 10000; // per-test; the whole file stays well under 60 s

// Default mock reply: the words c0..c(n-1); a stream sends "c<i> " per chunk.
const defaultText = (n = 5) => Array.from({ length: n }, (_, i) => `c${i}`).join(' ');
const defaultStreamText = (n = 5) => Array.from({ length: n }, (_, i) => `c${i} `).join('');

const user = (content) => [{ role: 'user', content }];

let stack;
let client;

// Fails with skuld's and the mock's output attached, so a red run says why.
function withLogs(fn) {
  return async (t) => {
    try {
      await fn(t);
    } catch (err) {
      if (stack) err.message += `\n${stack.logs()}`;
      throw err;
    }
  };
}

const it = (name, fn, opts = {}) =>
  test(name, { timeout: TIMEOUT, ...opts }, opts.todo ? fn : withLogs(fn));

describe('openai SDK through skuld', { timeout: 55000 }, () => {
  before(async () => {
    stack = await startStack();
    client = new OpenAI({ baseURL: stack.baseURL, apiKey: CLIENT_KEY, maxRetries: 0, timeout: 8000 });
  });

  after(async () => {
    if (!stack) return;
    const st = await stack.stop();
    // skuld must drain and exit by itself on SIGTERM, with status 0.
    assert.equal(st.skuld.killed, undefined, 'skuld did not exit within the SIGTERM grace period');
    assert.equal(st.skuld.code, 0, `skuld exit status ${JSON.stringify(st.skuld)}`);
  });

  it('chat completion (non-stream): content, usage, upstream model and key', async () => {
    const res = await client.chat.completions.create({
      model: 'chat',
      messages: [
        { role: 'system', content: 'be brief' },
        { role: 'user', content: 'say hello world' },
      ],
    });
    assert.equal(res.object, 'chat.completion');
    assert.equal(res.choices.length, 1);
    assert.equal(res.choices[0].message.role, 'assistant');
    assert.equal(res.choices[0].message.content, defaultText());
    assert.equal(res.choices[0].finish_reason, 'stop');
    // prompt tokens = words of all message contents (2 + 3), completion = 5 words
    assert.deepEqual(
      { p: res.usage.prompt_tokens, c: res.usage.completion_tokens, t: res.usage.total_tokens },
      { p: 5, c: 5, t: 10 },
    );

    const last = await stack.mock('/_mock/last');
    assert.equal(last.path, '/v1/chat/completions');
    assert.equal(last.body.model, 'mock-model', 'public name must be mapped to the upstream id');
    assert.equal(last.headers.authorization, `Bearer ${UPSTREAM_KEY}`, 'upstream must get the provider key');
    assert.ok(!JSON.stringify(last).includes(CLIENT_KEY), 'the client key must not reach the upstream');
  });

  it('chat completion with scripted content and no model uses server.default_model', async () => {
    const content = 'Grüße, 世界 — ok';
    // The SDK sends whatever params it is given; omit "model" on purpose.
    const { data, response } = await client.chat.completions
      .create({ messages: user('hi'), mock: { content } })
      .withResponse();
    assert.equal(data.choices[0].message.content, content);
    assert.equal(response.headers.get('x-skuld-model'), 'chat');
    assert.equal(response.headers.get('x-skuld-provider'), 'mock');
  });

  it('chat stream with include_usage: every chunk in order, then usage', async () => {
    const stream = await client.chat.completions.create({
      model: 'chat',
      messages: user('count to five please'),
      stream: true,
      stream_options: { include_usage: true },
      mock: { chunks: 5, chunk_gap_ms: 5 },
    });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);

    assert.ok(chunks.length > 0, 'no chunks');
    for (const ch of chunks) assert.equal(ch.object, 'chat.completion.chunk');
    const pieces = chunks.flatMap((ch) => ch.choices.map((c) => c.delta?.content).filter((s) => s));
    assert.deepEqual(pieces, ['c0 ', 'c1 ', 'c2 ', 'c3 ', 'c4 ']);
    assert.equal(chunks[0].choices[0].delta.role, 'assistant');
    const finish = chunks.flatMap((ch) => ch.choices.map((c) => c.finish_reason).filter(Boolean));
    assert.deepEqual(finish, ['stop']);

    const final = chunks.at(-1);
    assert.deepEqual(final.choices, [], 'the usage chunk comes last, with no choices');
    assert.deepEqual(
      { p: final.usage.prompt_tokens, c: final.usage.completion_tokens, t: final.usage.total_tokens },
      { p: 4, c: 5, t: 9 },
    );
    for (const ch of chunks.slice(0, -1)) assert.equal(ch.usage ?? null, null, 'usage only in the last chunk');
  });

  it('chat stream without include_usage has no usage chunk', async () => {
    const stream = await client.chat.completions.create({
      model: 'chat',
      messages: user('hello'),
      stream: true,
      mock: { chunks: 3 },
    });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    const text = chunks.map((ch) => ch.choices[0]?.delta?.content ?? '').join('');
    assert.equal(text, defaultStreamText(3));
    for (const ch of chunks) {
      assert.equal(ch.choices.length, 1, `unexpected chunk ${JSON.stringify(ch)}`);
      assert.equal(ch.usage ?? null, null, `unexpected usage in ${JSON.stringify(ch)}`);
    }
  });

  it('chat stream is relayed incrementally, not buffered', async () => {
    const gap = 150;
    const stream = await client.chat.completions.create({
      model: 'chat',
      messages: user('slowly'),
      stream: true,
      mock: { chunks: 4, chunk_gap_ms: gap },
    });
    const seen = [];
    for await (const chunk of stream) {
      const piece = chunk.choices[0]?.delta?.content;
      if (piece) seen.push({ piece, at: performance.now() });
    }
    assert.deepEqual(
      seen.map((s) => s.piece),
      ['c0 ', 'c1 ', 'c2 ', 'c3 '],
    );
    const spread = seen.at(-1).at - seen[0].at;
    assert.ok(spread >= 2 * gap, `chunks arrived within ${spread.toFixed(0)} ms: the stream was buffered`);
  });

  it('chat stream helper (ChatCompletionStream) assembles the final completion', async () => {
    const content = 'The quick brown fox jumps over the lazy dog';
    const runner = client.chat.completions.stream({
      model: 'chat',
      messages: user('tell me about foxes'),
      stream_options: { include_usage: true },
      mock: { content, chunks: 7 },
    });
    const deltas = [];
    runner.on('content', (delta) => deltas.push(delta));
    const final = await runner.finalChatCompletion();
    assert.equal(final.choices[0].message.content, content);
    assert.equal(final.choices[0].finish_reason, 'stop');
    assert.equal(deltas.join(''), content);
    assert.equal(deltas.length, 7);
    assert.equal(final.usage?.completion_tokens, 9);
  });

  it('tool call, non-stream and stream', async () => {
    const tools = [
      {
        type: 'function',
        function: { name: 'lookup', parameters: { type: 'object', properties: { x: { type: 'integer' } } } },
      },
    ];
    const res = await client.chat.completions.create({
      model: 'chat',
      messages: user('call it'),
      tools,
      mock: { tool_call: true },
    });
    assert.equal(res.choices[0].finish_reason, 'tool_calls');
    const call = res.choices[0].message.tool_calls[0];
    assert.equal(call.function.name, 'lookup');
    assert.deepEqual(JSON.parse(call.function.arguments), { x: 1 });

    const runner = client.chat.completions.stream({
      model: 'chat',
      messages: user('call it'),
      tools,
      mock: { tool_call: true },
    });
    const final = await runner.finalChatCompletion();
    assert.equal(final.choices[0].finish_reason, 'tool_calls');
    assert.equal(final.choices[0].message.tool_calls[0].function.name, 'lookup');
    assert.deepEqual(JSON.parse(final.choices[0].message.tool_calls[0].function.arguments), { x: 1 });
  });

  it('completions (legacy), non-stream and stream', async () => {
    const res = await client.completions.create({
      model: 'chat',
      prompt: 'once upon a time',
      mock: { content: 'there was a gateway' },
    });
    assert.equal(res.object, 'text_completion');
    assert.equal(res.choices[0].text, 'there was a gateway');
    assert.deepEqual(
      { p: res.usage.prompt_tokens, c: res.usage.completion_tokens, t: res.usage.total_tokens },
      { p: 4, c: 4, t: 8 },
    );
    assert.equal((await stack.mock('/_mock/last')).path, '/v1/completions');

    const stream = await client.completions.create({
      model: 'chat',
      prompt: 'once upon a time',
      stream: true,
      stream_options: { include_usage: true },
      mock: { chunks: 3 },
    });
    let text = '';
    let usage = null;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.text ?? '';
      if (chunk.usage) usage = chunk.usage;
    }
    assert.equal(text, defaultStreamText(3));
    assert.equal(usage?.completion_tokens, 3);
  });

  it('embeddings: one vector of 8 floats per input, in order', async () => {
    const inputs = ['alpha', 'beta gamma', 'delta'];
    const res = await client.embeddings.create({ model: 'embed', input: inputs, encoding_format: 'float' });
    assert.equal(res.object, 'list');
    assert.equal(res.data.length, inputs.length);
    res.data.forEach((d, i) => {
      assert.equal(d.index, i);
      assert.equal(d.embedding.length, 8);
      for (const v of d.embedding) assert.equal(typeof v, 'number');
    });
    assert.equal(res.usage.prompt_tokens, 4);
    const last = await stack.mock('/_mock/last');
    assert.equal(last.path, '/v1/embeddings');
    assert.equal(last.body.model, 'mock-embed');

    // The vector is a function of the input: the same text alone gives the same vector.
    const one = await client.embeddings.create({ model: 'embed', input: 'delta', encoding_format: 'float' });
    assert.equal(one.data.length, 1);
    assert.deepEqual(one.data[0].embedding, res.data[2].embedding);
    assert.notDeepEqual(res.data[0].embedding, res.data[2].embedding);
  });

  // The SDK asks for base64 by default and decodes it; skuld forwards the field
  // and relays the base64 answer untouched.
  it('embeddings with the SDK default encoding (base64)', async () => {
    const res = await client.embeddings.create({ model: 'embed', input: 'alpha' });
    const ref = await client.embeddings.create({ model: 'embed', input: 'alpha', encoding_format: 'float' });
    assert.equal(res.data[0].embedding.length, 8);
    res.data[0].embedding.forEach((v, i) => assert.ok(Math.abs(v - ref.data[0].embedding[i]) < 1e-6));
  });

  it('models.list returns the configured public names', async () => {
    const ids = [];
    for await (const m of client.models.list()) {
      assert.equal(m.object, 'model');
      ids.push(m.id);
    }
    assert.deepEqual(ids.sort(), stack.models.map((m) => m.name).sort());
  });

  it('unknown model: NotFoundError 404, code model_not_found, upstream not called', async () => {
    const before = (await stack.mock('/_mock/stats')).requests;
    const err = await client.chat.completions
      .create({ model: 'no-such-model', messages: user('hi') })
      .then(() => assert.fail('expected an error'), (e) => e);
    assert.ok(err instanceof OpenAI.APIError, `not an APIError: ${err}`);
    assert.ok(err instanceof OpenAI.NotFoundError, `not a NotFoundError: ${err}`);
    assert.equal(err.status, 404);
    assert.equal(err.code, 'model_not_found');
    assert.equal(err.type, 'invalid_request_error');
    assert.equal(err.param, 'model');
    assert.match(err.message, /no-such-model/);
    assert.ok(err.requestID, 'error response without x-request-id');
    assert.equal((await stack.mock('/_mock/stats')).requests, before, 'upstream was called');

    const err2 = await client.embeddings
      .create({ model: 'no-such-embedder', input: 'x', encoding_format: 'float' })
      .then(() => assert.fail('expected an error'), (e) => e);
    assert.ok(err2 instanceof OpenAI.NotFoundError);
    assert.equal(err2.code, 'model_not_found');
  });

  it('a stream cut by the upstream mid-way makes the iteration throw', async () => {
    const stream = await client.chat.completions.create({
      model: 'chat',
      messages: user('go'),
      stream: true,
      stream_options: { include_usage: true },
      mock: { chunks: 5, cut_after: 2 },
    });
    const pieces = [];
    let err = null;
    try {
      for await (const chunk of stream) {
        const p = chunk.choices[0]?.delta?.content;
        if (p) pieces.push(p);
      }
    } catch (e) {
      err = e;
    }
    assert.ok(err, `the stream ended cleanly after ${JSON.stringify(pieces)}: a cut must not look complete`);
    assert.deepEqual(pieces, ['c0 ', 'c1 '], 'the chunks sent before the cut must arrive');
    // DESIGN: an SSE error event (OpenAI error object), not just a dropped connection.
    assert.ok(err instanceof OpenAI.APIError && !(err instanceof OpenAI.APIConnectionError), `not an in-stream APIError: ${err?.stack ?? err}`);
    assert.equal(typeof err.error?.message, 'string');
    assert.ok(err.type, 'error event without a type');
  });

  it('upstream 429 surfaces as RateLimitError with Retry-After', async () => {
    const err = await client.chat.completions
      .create({ model: 'chat', messages: user('hi'), mock: { status: 429, retry_after: 7 } })
      .then(() => assert.fail('expected an error'), (e) => e);
    assert.ok(err instanceof OpenAI.RateLimitError, `not a RateLimitError: ${err}`);
    assert.equal(err.status, 429);
    assert.equal(err.type, 'rate_limit_error');
    assert.equal(err.headers.get('retry-after'), '7');
    assert.ok(err.requestID);
  });

  it('upstream 5xx on a stream request surfaces before any chunk', async () => {
    const err = await client.chat.completions
      .create({ model: 'chat', messages: user('hi'), stream: true, mock: { status: 503 } })
      .then(async (s) => {
        for await (const _ of s);
        assert.fail('expected an error');
      }, (e) => e);
    assert.ok(err instanceof OpenAI.InternalServerError, `not an InternalServerError: ${err}`);
    assert.ok(err.status >= 500 && err.status <= 599);
  });

  it('x-request-id on responses: made when absent, echoed when sent', async () => {
    const a = await client.chat.completions.create({ model: 'chat', messages: user('hi') }).withResponse();
    assert.ok(a.request_id, 'no x-request-id on a chat response');
    assert.equal(a.request_id, a.response.headers.get('x-request-id'));

    const b = await client.chat.completions.create({ model: 'chat', messages: user('hi') }).withResponse();
    assert.notEqual(b.request_id, a.request_id, 'request ids must differ');

    const mine = 'e2e-request-0123456789';
    const c = await client.chat.completions
      .create({ model: 'chat', messages: user('hi') }, { headers: { 'x-request-id': mine } })
      .withResponse();
    assert.equal(c.request_id, mine);

    const s = await client.chat.completions
      .create({ model: 'chat', messages: user('hi'), stream: true })
      .withResponse();
    assert.ok(s.request_id, 'no x-request-id on a stream');
    assert.equal(s.response.headers.get('x-skuld-model'), 'chat');
    for await (const _ of s.data);

    const raw = await client.models.list().asResponse();
    assert.equal(raw.status, 200);
    assert.ok(raw.headers.get('x-request-id'), 'no x-request-id on /v1/models');
  });

  it('a client that leaves a stream cancels the upstream call', async () => {
    const statsBefore = await stack.mock('/_mock/stats');
    const stream = await client.chat.completions.create({
      model: 'chat',
      messages: user('long story'),
      stream: true,
      mock: { chunks: 200, chunk_gap_ms: 20 },
    });
    let n = 0;
    for await (const chunk of stream) {
      if (chunk.choices[0]?.delta?.content && ++n === 2) break; // the SDK aborts the request
    }
    const deadline = Date.now() + 5000;
    let stats;
    do {
      await new Promise((r) => setTimeout(r, 50));
      stats = await stack.mock('/_mock/stats');
    } while (stats.client_aborts <= statsBefore.client_aborts && Date.now() < deadline);
    assert.ok(stats.client_aborts > statsBefore.client_aborts, `upstream not cancelled: ${JSON.stringify(stats)}`);
    assert.equal(stats.streams_completed, statsBefore.streams_completed, 'the abandoned stream ran to the end');
  });

  it('concurrent requests get their own answers', async () => {
    const N = 24;
    const jobs = Array.from({ length: N }, async (_, i) => {
      const content = `answer number ${i}`;
      if (i % 2) {
        const r = await client.chat.completions.create({ model: 'chat', messages: user(`q${i}`), mock: { content, latency_ms: (i * 7) % 40 } });
        return [content, r.choices[0].message.content];
      }
      const s = await client.chat.completions.create({
        model: 'chat',
        messages: user(`q${i}`),
        stream: true,
        mock: { content, chunks: 4, chunk_gap_ms: (i * 3) % 10 },
      });
      let text = '';
      for await (const ch of s) text += ch.choices[0]?.delta?.content ?? '';
      return [content, text];
    });
    for (const [want, got] of await Promise.all(jobs)) assert.equal(got, want);
  });
});
