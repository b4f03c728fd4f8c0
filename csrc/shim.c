/*
 * One-line non-inline wrappers for DPDK's static-inline fast path.
 * Compiled by build.rs with the `cc` crate and the flags libdpdk.pc gives.
 */
#include "dpdk.h"

/*
 * The Rust side (src/dpdk/flags.rs) writes these as literals because
 * RTE_BIT64() is a function-like macro bindgen cannot evaluate. Fail the
 * build if DPDK ever changes them.
 */
_Static_assert(RTE_ETH_RSS_IPV4 == (1ULL << 2), "RTE_ETH_RSS_IPV4");
_Static_assert(RTE_ETH_RSS_NONFRAG_IPV4_TCP == (1ULL << 4), "RTE_ETH_RSS_NONFRAG_IPV4_TCP");
_Static_assert(RTE_ETH_RSS_NONFRAG_IPV4_UDP == (1ULL << 5), "RTE_ETH_RSS_NONFRAG_IPV4_UDP");
_Static_assert(RTE_ETH_RSS_IPV6 == (1ULL << 8), "RTE_ETH_RSS_IPV6");
_Static_assert(RTE_ETH_RSS_NONFRAG_IPV6_TCP == (1ULL << 10), "RTE_ETH_RSS_NONFRAG_IPV6_TCP");
_Static_assert(RTE_ETH_RX_OFFLOAD_IPV4_CKSUM == (1ULL << 1), "RTE_ETH_RX_OFFLOAD_IPV4_CKSUM");
_Static_assert(RTE_ETH_RX_OFFLOAD_UDP_CKSUM == (1ULL << 2), "RTE_ETH_RX_OFFLOAD_UDP_CKSUM");
_Static_assert(RTE_ETH_RX_OFFLOAD_TCP_CKSUM == (1ULL << 3), "RTE_ETH_RX_OFFLOAD_TCP_CKSUM");
_Static_assert(RTE_ETH_RX_OFFLOAD_RSS_HASH == (1ULL << 19), "RTE_ETH_RX_OFFLOAD_RSS_HASH");
_Static_assert(RTE_ETH_TX_OFFLOAD_IPV4_CKSUM == (1ULL << 1), "RTE_ETH_TX_OFFLOAD_IPV4_CKSUM");
_Static_assert(RTE_ETH_TX_OFFLOAD_UDP_CKSUM == (1ULL << 2), "RTE_ETH_TX_OFFLOAD_UDP_CKSUM");
_Static_assert(RTE_ETH_TX_OFFLOAD_TCP_CKSUM == (1ULL << 3), "RTE_ETH_TX_OFFLOAD_TCP_CKSUM");
_Static_assert(RTE_MAX_ETHPORTS <= 65535, "port ids are u16");

int dl_rte_errno(void) { return rte_errno; }
unsigned dl_rte_lcore_id(void) { return rte_lcore_id(); }
uint64_t dl_rte_rdtsc(void) { return rte_rdtsc(); }

uint16_t dl_rte_eth_rx_burst(uint16_t port_id, uint16_t queue_id,
                             struct rte_mbuf **rx_pkts, uint16_t nb_pkts)
{ return rte_eth_rx_burst(port_id, queue_id, rx_pkts, nb_pkts); }

uint16_t dl_rte_eth_tx_burst(uint16_t port_id, uint16_t queue_id,
                             struct rte_mbuf **tx_pkts, uint16_t nb_pkts)
{ return rte_eth_tx_burst(port_id, queue_id, tx_pkts, nb_pkts); }

struct rte_mbuf *dl_rte_pktmbuf_alloc(struct rte_mempool *mp)
{ return rte_pktmbuf_alloc(mp); }

int dl_rte_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs,
                              unsigned count)
{ return rte_pktmbuf_alloc_bulk(mp, mbufs, count); }

int dl_rte_pktmbuf_alloc_frames(struct rte_mempool *mp, struct rte_mbuf **mbufs,
                                unsigned count, uint16_t len, void **data)
{
	unsigned i;

	if (rte_pktmbuf_alloc_bulk(mp, mbufs, count) != 0)
		return -1;
	for (i = 0; i < count; i++) {
		struct rte_mbuf *m = mbufs[i];

		if ((uint32_t)m->data_off + len > m->buf_len) {
			rte_pktmbuf_free_bulk(mbufs, count);
			return -1;
		}
		m->data_len = len;
		m->pkt_len = len;
		data[i] = rte_pktmbuf_mtod(m, void *);
	}
	return 0;
}

void dl_rte_pktmbuf_free(struct rte_mbuf *m) { rte_pktmbuf_free(m); }
void dl_rte_pktmbuf_reset(struct rte_mbuf *m) { rte_pktmbuf_reset(m); }

char *dl_rte_pktmbuf_append(struct rte_mbuf *m, uint16_t len)
{ return rte_pktmbuf_append(m, len); }

char *dl_rte_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len)
{ return rte_pktmbuf_prepend(m, len); }

char *dl_rte_pktmbuf_adj(struct rte_mbuf *m, uint16_t len)
{ return rte_pktmbuf_adj(m, len); }

int dl_rte_pktmbuf_trim(struct rte_mbuf *m, uint16_t len)
{ return rte_pktmbuf_trim(m, len); }

uint16_t dl_rte_pktmbuf_headroom(const struct rte_mbuf *m)
{ return rte_pktmbuf_headroom(m); }

uint16_t dl_rte_pktmbuf_tailroom(const struct rte_mbuf *m)
{ return rte_pktmbuf_tailroom(m); }

void *dl_rte_pktmbuf_mtod(const struct rte_mbuf *m)
{ return rte_pktmbuf_mtod(m, void *); }

void *dl_rte_pktmbuf_data(const struct rte_mbuf *m, uint16_t *data_len)
{
	*data_len = m->data_len;
	return rte_pktmbuf_mtod(m, void *);
}

uint16_t dl_rte_pktmbuf_data_len(const struct rte_mbuf *m) { return m->data_len; }
uint32_t dl_rte_pktmbuf_pkt_len(const struct rte_mbuf *m) { return m->pkt_len; }
uint16_t dl_rte_pktmbuf_nb_segs(const struct rte_mbuf *m) { return m->nb_segs; }
uint16_t dl_rte_pktmbuf_port(const struct rte_mbuf *m) { return m->port; }
uint64_t dl_rte_pktmbuf_ol_flags(const struct rte_mbuf *m) { return m->ol_flags; }
uint32_t dl_rte_pktmbuf_rss_hash(const struct rte_mbuf *m) { return m->hash.rss; }

int dl_rte_pktmbuf_set_len(struct rte_mbuf *m, uint16_t len)
{
	if (m->nb_segs != 1 || (uint32_t)m->data_off + len > m->buf_len)
		return -1;
	m->data_len = len;
	m->pkt_len = len;
	return 0;
}

void dl_rte_pktmbuf_tx_offload(struct rte_mbuf *m, uint64_t flags,
                               uint8_t l2_len, uint16_t l3_len, uint8_t l4_len)
{
	m->ol_flags = (m->ol_flags & ~RTE_MBUF_F_TX_OFFLOAD_MASK) | flags;
	m->l2_len = l2_len;
	m->l3_len = l3_len;
	m->l4_len = l4_len;
}

void dl_rte_pktmbuf_tx_offload_clear(struct rte_mbuf *m)
{
	m->ol_flags &= ~RTE_MBUF_F_TX_OFFLOAD_MASK;
	m->tx_offload = 0;
}
