import { parseVariableQuery } from './variables';

describe('parseVariableQuery', () => {
  it('field alone', () => {
    expect(parseVariableQuery('domain')).toEqual({ field: 'domain', prefix: undefined });
  });
  it('field and prefix, trimmed; an empty prefix is none', () => {
    expect(parseVariableQuery(' sender_domain : ex ')).toEqual({ field: 'sender_domain', prefix: 'ex' });
    expect(parseVariableQuery('host:')).toEqual({ field: 'host', prefix: undefined });
  });
  it('a prefix may itself contain a colon', () => {
    expect(parseVariableQuery('relay:mx.example.com[203.0.113.5]:25')).toEqual({
      field: 'relay',
      prefix: 'mx.example.com[203.0.113.5]:25',
    });
  });
  it('every field of /api/v1/values is accepted', () => {
    for (const f of ['domain', 'sender_domain', 'host', 'status', 'dsn', 'relay', 'sender', 'recipient']) {
      expect(parseVariableQuery(f).field).toBe(f);
    }
  });
  it('anything else is an error naming the valid fields', () => {
    expect(() => parseVariableQuery('')).toThrow(/FIELD one of domain, sender_domain/);
    expect(() => parseVariableQuery('subject:x')).toThrow(/Unknown variable query "subject:x"/);
  });
});
