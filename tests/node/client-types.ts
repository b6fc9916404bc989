// A program that uses every call of @sluice-dev/client, type-checked by
// client-types.test.js against the package's declarations (never run).
// Each @ts-expect-error marks a misuse that the types must catch.

import {
  ChatStream,
  ConnectionError,
  SluiceClient,
  SluiceError,
  Subscription,
  backoff,
  createParser,
  defaultRetry,
  itemText,
  type ChatChunk,
  type ChatResult,
  type Conversation,
  type ConversationEvent,
  type ConversationItem,
  type Gap,
  type TopicEvent,
} from '@sluice-dev/client';

export async function everything(signal: AbortSignal): Promise<string> {
  const client = new SluiceClient({ baseURL: 'http://127.0.0.1:8080', apiKey: 'k', retry: { maxDelay: 5000 } });
  client.headers = { 'X-Trace': '1' };
  const models = await client.models({ signal });
  const first: string = models[0].id;

  const stream: ChatStream = client.chat(
    { model: first, messages: [{ role: 'user', content: 'Hi' }], temperature: 0.2 },
    {
      onOpen: (s) => s.id?.toUpperCase(),
      onDelta: (text: string, chunk: ChatChunk) => text + chunk.id,
      onChunk: (chunk) => chunk.choices[0]?.finish_reason,
      onState: (state, info) => (state === 'reconnecting' ? info.delay : info.lastEventId),
      signal,
      cancelOnDisconnect: true,
    },
  );
  for await (const chunk of stream) {
    const content: string | null | undefined = chunk.choices[0]?.delta.content;
    if (content === 'stop') stream.stop();
  }
  const result: ChatResult = await stream.done;
  if (result.status === 'expired' && result.error instanceof SluiceError) {
    const code: string | null = result.error.code;
    const status: number = result.error.status;
    const message: string | undefined = result.error.error?.message;
    void [code, status, message];
  }
  const again = client.attach(stream.id ?? '', stream.lastEventId, { text: stream.text, onDelta: () => {} });
  again.abort();
  const cancelled = await client.cancel('id', { signal });
  void cancelled.status;

  const sub: Subscription = client.subscribe('room', { from: 'start', signal, retry: { idleTimeout: 60_000 } });
  await sub.opened;
  for await (const ev of sub) {
    const e: TopicEvent = ev;
    if (e.event === 'sluice.gap') {
      const gap = JSON.parse(e.data) as Gap;
      void gap.reason;
    }
    break;
  }
  client.subscribe('room', { lastEventId: sub.lastEventId, onEvent: (ev, s) => (ev.data === 'bye' ? s.close() : undefined) });
  const published = await client.publish('room', { user: 'ann' }, { event: 'joined' });
  void published.id;

  const conv: Conversation = await client.conversations.create({ title: 'T', items: [{ role: 'user', content: 'Hi' }] });
  await client.conversations.update(conv.id, { title: 'U', metadata: { a: 'b' } });
  const page = await client.conversations.list({ q: 'hi', limit: 10 });
  for await (const c of page) void c.current_id;
  void (await page.nextPage())?.data.length;
  const items = await client.conversations.items.list(conv.id, { order: 'asc' });
  const item: ConversationItem = items.data[0];
  if (item.status === 'in_progress' && item.stream_id) client.attach(item.stream_id, '', { text: itemText(item) });
  await client.conversations.items.create(conv.id, [{ role: 'assistant', content: [{ type: 'output_text', text: 'x' }], parent_id: item.id }]);
  void (await client.conversations.items.delete(conv.id, item.id)).updated_at;
  void (await client.conversations.export(conv.id, { format: 'markdown' })).length;
  void (await client.conversations.delete(conv.id, { keepalive: true })).deleted;
  const feed = client.conversations.events({ onEvent: (ev) => (JSON.parse(ev.data) as ConversationEvent).type });
  feed.close();
  const inConv = client.chat({ model: 'demo', messages: [], conversation: conv.id, parent_id: item.id });
  void [inConv.conversationId, inConv.messageId];

  const parser = createParser({ onEvent: (ev) => ev.data, onRetry: (ms: number) => ms });
  parser.feed('data: x\n\n');
  void backoff(1, defaultRetry);
  void (new ConnectionError('down').code satisfies 'network');

  // @ts-expect-error: a chat needs messages
  client.chat({ model: 'demo' });
  // @ts-expect-error: from takes only 'start'
  client.subscribe('room', { from: 'end' });
  // @ts-expect-error: done never rejects, and has no such status
  if ((await stream.done).status === 'rejected') return '';
  // @ts-expect-error: items are messages with a role
  await client.conversations.create({ items: [{ content: 'no role' }] });
  // @ts-expect-error: the feed has no from
  client.conversations.events({ from: 'start' });
  // @ts-expect-error: a ChatStream is made by the client
  new ChatStream();
  return result.text;
}
