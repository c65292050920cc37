import type { SynchroClient } from '@synchro/client'
import { randomUUID } from 'expo-crypto'
import { useEffect, useState } from 'react'
import { Button, FlatList, Text, View } from 'react-native'
import { createClient } from './sync'
import type { Orders } from './synchro-types'

const USER_ID = '00000000-0000-4000-8000-00000000a11c'

export default function App() {
  const [client, setClient] = useState<SynchroClient | null>(null)
  const [orders, setOrders] = useState<Orders[]>([])
  const [progress, setProgress] = useState('')

  useEffect(() => {
    let c: SynchroClient | undefined
    let stopWatch: (() => void) | undefined
    void (async () => {
      c = await createClient(USER_ID)
      // First sync of a large dataset: show rows and tables so far.
      c.onStatusChange(({ status, progress: p }) => {
        setProgress(p?.phase === 'snapshot' ? `${p.rows} rows, ${p.tablesDone}/${p.tablesTotal} tables` : status)
      })
      await c.start()
      stopWatch = c.watch<Orders>(
        'SELECT * FROM orders WHERE deleted_at IS NULL ORDER BY created_at DESC',
        [],
        ['orders'],
        setOrders,
      )
      setClient(c)
    })()
    return () => {
      stopWatch?.()
      void c?.close()
    }
  }, [])

  const addOrder = () =>
    client?.execute('INSERT INTO orders (id, user_id, ship_address) VALUES (?, ?, ?)', [
      randomUUID(),
      USER_ID,
      `Order ${new Date().toISOString()}`,
    ])

  return (
    <View style={{ flex: 1, paddingTop: 60, paddingHorizontal: 16 }}>
      <Text>Sync: {progress}</Text>
      <Button title="Add order" onPress={addOrder} disabled={!client} />
      <FlatList
        data={orders}
        keyExtractor={(o) => o.id}
        renderItem={({ item }) => (
          <Text>
            {item.ship_address} — {item.status} — {item.total_cents} cents
          </Text>
        )}
      />
    </View>
  )
}
