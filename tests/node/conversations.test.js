// Conversations kept on the server, through the official `openai` npm
// package: its Conversations API reads Sluice's, and a chat completion
// carries the extra `conversation` field, whose answer is then stored.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { useSluice } from './server.js';

const T = { timeout: 30_000 };

describe('conversations through the openai SDK', () => {
  // server.js gives each server a data directory of its own.
  const sluice = useSluice(['--demo-tps', '0', '--demo-ttft', '0s']);
  const sdk = () => new OpenAI({ baseURL: sluice.url + '/v1', apiKey: 'unused', maxRetries: 0 });

  test('conversations.create, items.create and items.list speak Sluice', T, async () => {
    const client = sdk();
    const conv = await client.conversations.create({
      metadata: { topic: 'rivers' },
      items: [{ type: 'message', role: 'user', content: 'Name a river.' }],
    });
    assert.equal(conv.object, 'conversation');
    assert.match(conv.id, /^conv_[0-9a-f]{32}$/);
    assert.deepEqual(conv.metadata, { topic: 'rivers' });

    await client.conversations.items.create(conv.id, {
      items: [{ type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'The Loire.' }] }],
    });
    const texts = [];
    for await (const item of client.conversations.items.list(conv.id, { order: 'asc', limit: 1 })) {
      assert.equal(item.type, 'message');
      texts.push(`${item.role}: ${item.content[0].text}`);
    }
    assert.deepEqual(texts, ['user: Name a river.', 'assistant: The Loire.']);
  });

  test('a streamed chat with the extra conversation field is stored whole', T, async () => {
    const client = sdk();
    const conv = await client.conversations.create({});
    const { data: stream, response } = await client.chat.completions
      .create({
        model: 'demo',
        stream: true,
        messages: [{ role: 'user', content: 'Tell me about deltas.' }],
        conversation: conv.id, // an extra field: the SDK sends it as it is
      })
      .withResponse();
    assert.equal(response.headers.get('sluice-conversation-id'), conv.id);
    const messageID = response.headers.get('sluice-message-id');
    assert.match(messageID ?? '', /^msg_[0-9a-f]{32}$/);
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    assert.ok(text.length > 0, 'the answer is empty');

    // The recorder stores the end just after the stream's: wait for it.
    let item;
    for (let i = 0; i < 200; i++) {
      item = await client.conversations.items.retrieve(messageID, { conversation_id: conv.id });
      if (item.status !== 'in_progress') break;
      await new Promise((r) => setTimeout(r, 25));
    }
    assert.equal(item.status, 'completed');
    assert.equal(item.role, 'assistant');
    assert.equal(item.content[0].type, 'output_text');
    assert.equal(item.content[0].text, text);
  });
});
