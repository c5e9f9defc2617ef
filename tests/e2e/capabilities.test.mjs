// End-to-end, issue 17 item 4 (README "Capabilities"): with the official
// `openai` SDK, a request that needs a capability the model named lacks
// (tools, a JSON response_format, n > 1 on the built-in echo model, which
// only makes plain text) is refused with the SDK's BadRequestError, status
// 400, code model_capability_missing, the capability in the message, and
// nothing sent upstream; the same request to an OpenAI-compatible
// deployment (all capabilities) passes through, and a route with both sends
// it to the capable one. A bad n is an invalid_value BadRequestError.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import OpenAI from 'openai';

import { KEY_ENV, startStack } from './harness.mjs';

const TIMEOUT = 20000;
const TOOLS = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }];
const MESSAGES = [{ role: 'user', content: 'hello' }];

let stack;
let openai;

const it = (name, fn) =>
  test(name, { timeout: TIMEOUT }, async (t) => {
    try {
      await fn(t);
    } catch (err) {
      if (stack) err.message += `\n${stack.logs()}`;
      throw err;
    }
  });

const config = (mockPort) =>
  [
    'server:',
    '  default_model: chat',
    '  drain_timeout: 2s',
    'providers:',
    '  - name: mock',
    '    type: openai',
    `    base_url: http://127.0.0.1:${mockPort}/v1`,
    `    api_key: env:${KEY_ENV}`,
    '  - name: builtin',
    '    type: echo',
    'models:',
    '  - {name: chat, provider: mock, model: mock-model, quality: 0.5}',
    '  - {name: echo, provider: builtin, quality: 0.9}',
    'routes:',
    '  - {name: auto, candidates: [echo, chat]}',
    '',
  ].join('\n');

const requests = async () => (await stack.mock('/_mock/stats')).requests;

describe('capabilities through the official openai client', { timeout: 120000 }, () => {
  before(async () => {
    stack = await startStack({ config });
    openai = new OpenAI({ baseURL: stack.baseURL, apiKey: 'sk-e2e', maxRetries: 0, timeout: 15000 });
  });

  after(async () => {
    if (stack) {
      const st = await stack.stop();
      assert.equal(st.skuld.code, 0, `skuld exit status ${JSON.stringify(st.skuld)}`);
    }
  });

  const refused = (cap, param) => (err) => {
    assert.ok(err instanceof OpenAI.BadRequestError, `${err}`);
    assert.equal(err.status, 400);
    assert.equal(err.code, 'model_capability_missing');
    assert.equal(err.param, param);
    assert.match(err.message, new RegExp(`'${cap}'`));
    assert.match(err.message, /'echo'/);
    return true;
  };

  it('tools, json and n > 1 to the echo model: BadRequestError naming the capability', async () => {
    const before = await requests();
    await assert.rejects(openai.chat.completions.create({ model: 'echo', messages: MESSAGES, tools: TOOLS }), refused('tools', 'tools'));
    await assert.rejects(
      openai.chat.completions.create({ model: 'echo', messages: MESSAGES, tools: TOOLS, stream: true }),
      refused('tools', 'tools'),
    );
    await assert.rejects(
      openai.chat.completions.create({ model: 'echo', messages: MESSAGES, response_format: { type: 'json_object' } }),
      refused('json', 'response_format'),
    );
    await assert.rejects(openai.chat.completions.create({ model: 'echo', messages: MESSAGES, n: 2 }), refused('n', 'n'));
    const image = [{ type: 'text', text: 'what is it' }, { type: 'image_url', image_url: { url: 'data:image/png;base64,AA==' } }];
    await assert.rejects(openai.chat.completions.create({ model: 'echo', messages: [{ role: 'user', content: image }] }), refused('vision', 'messages'));
    assert.equal(await requests(), before, 'nothing reached an upstream');
    // without them the echo model answers
    const res = await openai.chat.completions.create({ model: 'echo', messages: MESSAGES });
    assert.equal(res.choices[0].message.content, 'hello');
  });

  it('the same requests to the OpenAI-compatible deployment pass through', async () => {
    await openai.chat.completions.create({ model: 'chat', messages: MESSAGES, tools: TOOLS, n: 2, response_format: { type: 'json_object' } });
    const last = await stack.mock('/_mock/last');
    assert.deepEqual(last.body.tools, TOOLS);
    assert.equal(last.body.n, 2);
    assert.deepEqual(last.body.response_format, { type: 'json_object' });
  });

  it('a route sends a tools request to its capable candidate', async () => {
    const plain = await openai.chat.completions.create({ model: 'auto', messages: MESSAGES }).withResponse();
    assert.equal(plain.response.headers.get('x-skuld-model'), 'echo');
    const tools = await openai.chat.completions.create({ model: 'auto', messages: MESSAGES, tools: TOOLS }).withResponse();
    assert.equal(tools.response.headers.get('x-skuld-model'), 'chat');
    assert.deepEqual((await stack.mock('/_mock/last')).body.tools, TOOLS);
  });

  it('a bad n is a BadRequestError (invalid_value)', async () => {
    await assert.rejects(openai.chat.completions.create({ model: 'chat', messages: MESSAGES, n: 0 }), (err) => {
      assert.ok(err instanceof OpenAI.BadRequestError, `${err}`);
      assert.equal(err.code, 'invalid_value');
      assert.equal(err.param, 'n');
      return true;
    });
  });
});
